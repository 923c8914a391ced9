//! All SQL of customer-profile, one module per aggregate. Every change runs in one
//! transaction together with its outbox events (and audit entries), so that
//! concurrent changes of one real customer are applied one at a time:
//! - source records arrive through the set-based path ([`bulk`]), as bulk batches or
//!   as groups of concurrent single upserts ([`UpsertWriter`]), which hold the ECIF
//!   advisory lock exclusively, as do the one-by-one path ([`upsert_in`], for records
//!   whose identity changed) and steward decisions;
//! - large batches of simple records run as partitions by identity side by side, each
//!   holding the ECIF lock shared and its partition's lock exclusively.
//!
//! A customer number that was absorbed by a merge answers with its survivor: reads
//! resolve it with the `surviving_party` function (migration 0009).
//!
//! # Layout
//! - `identify`: upserts of source records: identification, merge and unmerge
//!   (one by one, and the entry to the set-based path).
//! - [`bulk`]: the set-based path (preparation, runs, partitions, the run's write).
//! - `parties`: parties and their golden records: founding, survivorship,
//!   absorbing, reading a customer.
//! - `suspects`: suspect pairs and the steward's decision.
//! - `history`: golden-record history.
//! - `search`: customer search.
//! - `assignment`: who looks after a customer, and its history.
//! - `relationships`: relationships between customers.
//! - `view360`: the 360° view, read in one statement.
//! - `details`: maintained details and extended attributes.
//! - `access`: data scope and the org directory.
//! - `queue`: group commit of single upserts.
//!
//! This module holds what several of them share: event source, blind-index domains,
//! how a record is stored (identity, attributes), locks and small look-ups.

use crm_platform::sqlstate::DbFailure;
use serde_json::{Map, Value, json};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

use crate::domain::{Attribute, IdentityKey, ValidatedRecord};
use crate::error::{Error, Result};
use crate::pii::PiiCipher;

mod access;
mod assignment;
pub mod bulk;
mod details;
mod history;
mod identify;
mod parties;
mod relationships;
mod search;
mod suspects;
mod view360;
mod writer;

pub use access::*;
pub use assignment::{AssignmentChange, AssignmentHistoryRow, AssignmentRow, assignment_history, change_assignments};
pub use bulk::{PreparedRecord, upsert_prepared_in};
/// An entry of the kit's audit trail (its subject is the customer number).
pub use crm_platform::audit::Entry as AuditEntry;
pub use details::*;
pub use history::{HistoryRow, customer_history, party_history};
pub use identify::{UpsertResult, upsert_batch, upsert_in};
pub use parties::{StoredCustomer, customer_by_number, customer_by_source};
pub use relationships::{RelationshipRow, add_relationship, relationships};
pub use search::{CustomerRow, SearchCriteria, search};
pub use suspects::{StoredSuspect, open_suspects, resolve_suspect};
pub use view360::{Customer360, customer_360};
pub use writer::UpsertWriter;

/// Source of this service's events.
pub const EVENT_SOURCE: &str = "crm/customer-profile";

/// Blind index domain of ID numbers (matching form).
pub const ID_INDEX: &str = "id";
/// Blind index domain of mobile phones (normalised form).
pub const PHONE_INDEX: &str = "phone";

/// The form an ID number is searched by: its matching form, or for type "other"
/// (which has none, as it is never merged) its normalised form.
pub fn search_form(id_type: crate::domain::IdType, raw: &str) -> String {
    crate::domain::match_key(id_type, raw).unwrap_or_else(|| crate::domain::normalize_id_number(raw))
}

/// How a record is identified in the database: the blind index of its ID number and
/// the identity digest built on it, so that no table holds an ID number in clear.
fn stored_identity(pii: &PiiCipher, key: &IdentityKey) -> (String, String) {
    let blind = pii.blind_index(ID_INDEX, &key.match_key);
    let digest = format!("{}|{}|{}", key.id_type.code(), blind, key.name_key);
    (blind, digest)
}

/// The attributes a source record is stored with (ID number and phone encrypted).
fn attributes_json(pii: &PiiCipher, v: &ValidatedRecord) -> Value {
    let r = &v.record;
    let mut m = Map::new();
    m.insert("party_kind".into(), json!(party_kind_code(r.party_kind)));
    m.insert("id_type".into(), json!(r.id_type.code()));
    m.insert(Attribute::IdNumber.code().into(), json!(pii.encrypt(Attribute::IdNumber.code(), &r.id_number)));
    m.insert(Attribute::Name.code().into(), json!(r.name));
    if let Some(region) = crate::domain::id::resident_id_region(r.id_type, &r.id_number) {
        m.insert(crate::domain::golden::ID_REGION.into(), json!(region));
    }
    let opt = |m: &mut Map<String, Value>, a: Attribute, v: Option<String>| {
        if let Some(v) = v {
            m.insert(a.code().into(), json!(v));
        }
    };
    opt(&mut m, Attribute::Gender, r.gender.map(|g| g.code().to_string()));
    opt(&mut m, Attribute::BirthDate, r.birth_date.map(|d| d.to_iso()));
    opt(&mut m, Attribute::Nationality, r.nationality.clone());
    opt(&mut m, Attribute::MobilePhone, r.mobile_phone.as_ref().map(|p| pii.encrypt(Attribute::MobilePhone.code(), p)));
    opt(&mut m, Attribute::Email, r.email.clone());
    opt(&mut m, Attribute::Address, r.address.clone());
    opt(&mut m, Attribute::Occupation, r.occupation.clone());
    Value::Object(m)
}

/// `PERSONAL` or `CORPORATE`.
pub fn party_kind_code(kind: crate::domain::PartyKind) -> &'static str {
    match kind {
        crate::domain::PartyKind::Personal => "PERSONAL",
        crate::domain::PartyKind::Corporate => "CORPORATE",
    }
}

/// The advisory lock of an identity (ID type and blind index of the number).
fn lock_key(id_type: &str, match_key: &str) -> String {
    format!("identity|{id_type}|{match_key}")
}

/// Takes an advisory lock named by `key` until the transaction ends.
async fn advisory_lock(tx: &mut PgConnection, key: &str) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))").bind(key).execute(tx).await?;
    Ok(())
}

/// The customer number of a party.
async fn customer_number_of(tx: &mut PgConnection, party_id: i64) -> Result<String> {
    Ok(sqlx::query_scalar("SELECT customer_number FROM party WHERE party_id = $1").bind(party_id).fetch_one(tx).await?)
}

/// A deadlock or serialization failure: the transaction may succeed when run again.
pub(crate) fn retryable(e: &Error) -> bool {
    matches!(e, Error::Database(d) if matches!(DbFailure::of(d), DbFailure::DeadlockDetected | DbFailure::SerializationFailure))
}

/// [`customer_number_of`] outside a transaction.
async fn customer_number_of_pool(pool: &PgPool, party_id: i64) -> Result<String> {
    let mut conn = pool.acquire().await?;
    customer_number_of(&mut conn, party_id).await
}

/// Microseconds since the Unix epoch (the unit of lineage and survivorship times).
fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

/// The time `us` microseconds after the Unix epoch.
fn at_micros(us: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .map_err(|e| Error::Corrupt(format!("timestamp {us}: {e}")))
}
