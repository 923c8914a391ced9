//! [`PrincipalKind`] and [`DataScope`] as stored: a `TEXT` column holding the same
//! lower-case name the tokens carry (`user`, `service`; `own`, `org`, `subtree`,
//! `all`). Binding one writes that name; reading a row parses it once, and a name
//! this build does not know is a decode error naming the value, never a silent default.

use std::fmt;
use std::str::FromStr;

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

use super::token::{DataScope, PrincipalKind};

/// A stored name that is not one of the enum's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownName {
    /// Which enum was parsed.
    pub what: &'static str,
    /// The name found.
    pub value: String,
}

impl PrincipalKind {
    /// The kind's name in tokens and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Service => "service",
        }
    }
}

impl FromStr for PrincipalKind {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [PrincipalKind::User, PrincipalKind::Service]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownName { what: "principal kind", value: s.into() })
    }
}

impl FromStr for DataScope {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [DataScope::Own, DataScope::Org, DataScope::Subtree, DataScope::All]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownName { what: "data scope", value: s.into() })
    }
}

impl fmt::Display for PrincipalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for DataScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `TEXT` column mapping through `as_str` and `FromStr`, written once for both enums.
macro_rules! text_column {
    ($ty:ty) => {
        impl Type<Postgres> for $ty {
            fn type_info() -> PgTypeInfo {
                <str as Type<Postgres>>::type_info()
            }

            fn compatible(ty: &PgTypeInfo) -> bool {
                <str as Type<Postgres>>::compatible(ty)
            }
        }

        impl Encode<'_, Postgres> for $ty {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as Encode<'_, Postgres>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> Decode<'r, Postgres> for $ty {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                Ok(<&str as Decode<'r, Postgres>>::decode(value)?.parse()?)
            }
        }
    };
}

text_column!(PrincipalKind);
text_column!(DataScope);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_and_scope_reads_back_from_its_stored_name() {
        for kind in [PrincipalKind::User, PrincipalKind::Service] {
            assert_eq!(kind.as_str().parse::<PrincipalKind>(), Ok(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str(), "tokens and rows use one name");
        }
        for scope in [DataScope::Own, DataScope::Org, DataScope::Subtree, DataScope::All] {
            assert_eq!(scope.as_str().parse::<DataScope>(), Ok(scope));
            assert_eq!(serde_json::to_value(scope).unwrap(), scope.as_str(), "tokens and rows use one name");
        }
    }

    #[test]
    fn an_unknown_name_is_an_error_that_names_it() {
        for bad in ["", "USER", "services", "everything", "Own"] {
            assert!(bad.parse::<PrincipalKind>().is_err(), "{bad:?}");
            let e = bad.parse::<DataScope>().unwrap_err();
            assert_eq!(e.to_string(), format!("unknown data scope {bad:?}"));
        }
    }
}
