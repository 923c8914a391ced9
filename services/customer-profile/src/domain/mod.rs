//! The ECIF's business rules, pure and without I/O.
//!
//! A source record is validated (rejected when unusable, flagged when imperfect), keyed
//! by the bank's identification rule (ID type + ID number + name, with 15-digit
//! resident IDs matched as 18 and type "other" never merged), grouped with every record
//! of the same key into one customer, and the customer's golden record is chosen
//! attribute by attribute by source trust (survivorship).
//!
//! # Layout
//! - [`id`]: ID types, ID number normalisation, GB 11643 resident IDs, dates, gender.
//! - [`name`]: names in matching form.
//! - [`record`]: source records, validation, data-quality flags.
//! - [`identify`]: identity keys and the merge / suspect / unrelated decision.
//! - [`placement`]: which party a new or changed source record belongs to.
//! - [`survivorship`]: trust table and golden value choice.
//! - [`golden`]: a party's golden record over all its records, and what changed.
//! - [`assign`]: how an assignment change applies.
//! - [`customer_number`]: the bank customer number and its check digit.
//! - [`mask`]: masking of ID and phone numbers.
//! - [`codes`]: the kinds and statuses stored as text (relationship kinds, assignment
//!   actions, history change kinds, party and suspect pair statuses).
//!
//! Every kind and status is an enum with one mapping to its stored code (`code` and
//! `from_code`, written by `stored_codes!`); the mapping to proto enum numbers lives
//! once in `crate::convert`.

/// Gives an enum its stored codes: `CODES` (every value with its code), `code()` and
/// `from_code()` (case-insensitive, trimmed). The one mapping between a kind or status
/// and the text the database and the daily file hold.
macro_rules! stored_codes {
    ($ty:ident { $($variant:ident => $code:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value with its stored code.
            pub const CODES: &'static [($ty, &'static str)] = &[$(($ty::$variant, $code)),+];

            /// The stored code.
            pub fn code(self) -> &'static str {
                match self {
                    $($ty::$variant => $code),+
                }
            }

            /// The value of a stored code (case-insensitive, trimmed).
            pub fn from_code(code: &str) -> Option<$ty> {
                let code = code.trim();
                Self::CODES.iter().find(|(_, c)| c.eq_ignore_ascii_case(code)).map(|(v, _)| *v)
            }
        }
    };
}

pub mod assign;
pub mod codes;
pub mod customer_number;
pub mod details;
pub mod golden;
pub mod id;
pub mod identify;
pub mod mask;
pub mod name;
pub mod placement;
pub mod record;
pub mod survivorship;

pub use assign::{Assigned, AssignmentChange, apply_change};
pub use codes::{AssignmentAction, ChangeKind, PartyStatus, RelationshipKind, SuspectStatus, UpsertOutcome};
pub use customer_number::{CustomerNumber, customer_number, is_valid_customer_number};
pub use golden::{Survived, changed_attributes, history_changes, survive};
pub use id::{Date, Gender, IdType, match_key, normalize_id_number};
pub use identify::{IdentityKey, Relation, relate};
pub use mask::{mask_id_number, mask_phone};
pub use name::normalize_name;
pub use record::{PartyKind, QualityFlag, SourceRecord, ValidatedRecord, Violation, validate};
pub use survivorship::{Attribute, Candidate, TrustTable, Winner, choose};
