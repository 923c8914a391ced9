//! Customer search: active customers by blind indexes of ID number or phone, name,
//! home org or RM, inside the caller's data scope, paged by party id. The statement is
//! `search.sql`.

use serde_json::{Map, Value};
use sqlx::PgPool;

use super::Visibility;
use crate::error::Result;

/// Search criteria, already turned into what the database holds.
#[derive(Debug, Clone, Default)]
pub struct SearchCriteria {
    /// Blind indexes an ID number may be stored under.
    pub id_indexes: Option<Vec<String>>,
    /// Blind index of the phone.
    pub phone_index: Option<String>,
    /// Lower-cased name prefix.
    pub name_prefix: Option<String>,
    /// Lower-cased name fragment.
    pub name_contains: Option<String>,
    /// Home org.
    pub home_org_id: Option<String>,
    /// Primary or related RM.
    pub rm_id: Option<String>,
    /// The caller's data scope.
    pub visibility: Visibility,
}

/// One search hit.
#[derive(Debug, Clone)]
pub struct CustomerRow {
    /// Paging key.
    pub party_id: i64,
    /// Customer number.
    pub customer_number: String,
    /// PERSONAL / CORPORATE.
    pub party_kind: String,
    /// Golden attributes (ID and phone encrypted).
    pub golden: Map<String, Value>,
    /// Home org, if assigned.
    pub home_org_id: Option<String>,
    /// Primary RM, if assigned.
    pub primary_rm_id: Option<String>,
}

/// `s` with the LIKE wildcards (and the escape character) escaped, to match literally.
fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// A search hit as stored.
#[derive(sqlx::FromRow)]
struct Hit {
    party_id: i64,
    customer_number: String,
    party_kind: String,
    golden: Value,
    home_org_id: Option<String>,
    primary_rm_id: Option<String>,
}

/// Active customers matching every criterion, by party id after `after`.
pub async fn search(pool: &PgPool, c: &SearchCriteria, after: i64, limit: i64) -> Result<Vec<CustomerRow>> {
    let (scope, arg) = c.visibility.sql_args();
    let hits = sqlx::query_as::<_, Hit>(include_str!("search.sql"))
        .bind(after)
        .bind(&c.id_indexes)
        .bind(&c.phone_index)
        .bind(c.name_prefix.as_deref().map(like_escape))
        .bind(c.name_contains.as_deref().map(like_escape))
        .bind(&c.home_org_id)
        .bind(&c.rm_id)
        .bind(limit)
        .bind(scope)
        .bind(arg)
        .fetch_all(pool)
        .await?;
    Ok(hits
        .into_iter()
        .map(|h| CustomerRow {
            party_id: h.party_id,
            customer_number: h.customer_number,
            party_kind: h.party_kind,
            golden: match h.golden {
                Value::Object(m) => m,
                _ => Map::new(),
            },
            home_org_id: h.home_org_id,
            primary_rm_id: h.primary_rm_id,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_match_their_text_literally() {
        let cases = [("张", "张"), ("50%", "50\\%"), ("a_b", "a\\_b"), ("c:\\d", "c:\\\\d"), ("%_\\", "\\%\\_\\\\")];
        for (text, pattern) in cases {
            assert_eq!(like_escape(text), pattern, "{text}");
        }
    }
}
