//! Parties and their golden records: founding a party, re-running survivorship over
//! its source records ([`crate::domain::golden`]), absorbing one party into another on
//! a merge, and reading a customer by number or source record (absorbed numbers
//! resolve to the survivor through the `surviving_party` function).

use serde_json::{Map, Value, json};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

use super::{details, history, micros};
use crate::domain::{TrustTable, changed_attributes, customer_number, survive};
use crate::error::{Error, Result};

/// A golden record with its sources, as stored.
#[derive(Debug, Clone)]
pub struct StoredCustomer {
    /// Internal key of the (surviving) party.
    pub party_id: i64,
    /// Bank customer number.
    pub customer_number: String,
    /// `PERSONAL` / `CORPORATE`.
    pub party_kind: String,
    /// Golden attribute values by attribute code (plus `id_type`).
    pub golden: Map<String, Value>,
    /// Lineage by attribute code.
    pub lineage: Map<String, Value>,
    /// Union of the source records' flags.
    pub quality_flags: Vec<String>,
    /// Source keys (system, id).
    pub sources: Vec<(String, String)>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
}

/// Founds a party of `kind`: its id and new customer number.
pub(super) async fn new_party(tx: &mut PgConnection, kind: &str) -> Result<(i64, String)> {
    let seq: i64 = sqlx::query_scalar("SELECT nextval('customer_number_seq')").fetch_one(&mut *tx).await?;
    let domain_kind =
        if kind == "CORPORATE" { crate::domain::PartyKind::Corporate } else { crate::domain::PartyKind::Personal };
    let number = customer_number(domain_kind, seq as u64)
        .ok_or_else(|| Error::Corrupt("customer number sequence exhausted".into()))?;
    let id: i64 =
        sqlx::query_scalar("INSERT INTO party (customer_number, party_kind) VALUES ($1, $2) RETURNING party_id")
            .bind(&number)
            .bind(kind)
            .fetch_one(&mut *tx)
            .await?;
    Ok((id, number))
}

/// How many source records a party has.
pub(super) async fn record_count(tx: &mut PgConnection, party_id: i64) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM source_record WHERE party_id = $1")
        .bind(party_id)
        .fetch_one(tx)
        .await?)
}

/// Re-runs survivorship over every source record of a party and stores the golden
/// record. Returns the attributes whose golden value changed.
pub(super) async fn recompute(tx: &mut PgConnection, trust: &TrustTable, party_id: i64) -> Result<Vec<String>> {
    let rows = sqlx::query_as::<_, RecordRow>(
        "SELECT party_id, source_system, source_customer_id, attributes, quality_flags, updated_at
         FROM source_record WHERE party_id = $1",
    )
    .bind(party_id)
    .fetch_all(&mut *tx)
    .await?;
    let before: Value = sqlx::query_scalar("SELECT golden FROM party WHERE party_id = $1 FOR UPDATE")
        .bind(party_id)
        .fetch_one(&mut *tx)
        .await?;
    let records: Vec<_> = rows.into_iter().map(RecordRow::into_survivorship).collect();
    let survived = survive(trust, records.iter().map(|(s, i, a, f, u)| (s.as_str(), i.as_str(), a, f.as_slice(), *u)));
    let changed = changed_attributes(&before, &survived.golden);
    sqlx::query(
        "UPDATE party SET golden = $2, lineage = $3, quality_flags = $4, updated_at = now() WHERE party_id = $1",
    )
    .bind(party_id)
    .bind(Value::Object(survived.golden))
    .bind(Value::Object(survived.lineage))
    .bind(survived.flags)
    .execute(&mut *tx)
    .await?;
    Ok(changed)
}

/// Absorbs party `from` into `into`: its records and identity groups move, it is
/// marked MERGED and remembers its survivor.
pub(super) async fn absorb(tx: &mut PgConnection, from: i64, into: i64, actor: Option<&str>) -> Result<()> {
    // The survivor keeps its own assignment; it inherits the absorbed one's if it had none.
    sqlx::query(
        "INSERT INTO party_assignment (party_id, home_org_id, primary_rm_id, related_rm_ids)
         SELECT $2, home_org_id, primary_rm_id, related_rm_ids FROM party_assignment WHERE party_id = $1
         ON CONFLICT (party_id) DO NOTHING",
    )
    .bind(from)
    .bind(into)
    .execute(&mut *tx)
    .await?;
    // Relationships follow the survivor; one that would now point at itself is dropped.
    sqlx::query(
        "INSERT INTO party_relationship (party_id, kind, related_party_id, role, actor, created_at)
         SELECT CASE WHEN party_id = $1 THEN $2 ELSE party_id END, kind,
                CASE WHEN related_party_id = $1 THEN $2 ELSE related_party_id END, role, actor, created_at
         FROM party_relationship
         WHERE (party_id = $1 OR related_party_id = $1)
           AND (CASE WHEN party_id = $1 THEN $2 ELSE party_id END)
               <> (CASE WHEN related_party_id = $1 THEN $2 ELSE related_party_id END)
         ON CONFLICT DO NOTHING",
    )
    .bind(from)
    .bind(into)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM party_relationship WHERE party_id = $1 OR related_party_id = $1")
        .bind(from)
        .execute(&mut *tx)
        .await?;
    details::absorb_details(tx, from, into).await?;
    sqlx::query("UPDATE source_record SET party_id = $2 WHERE party_id = $1")
        .bind(from)
        .bind(into)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE identity_group SET party_id = $2 WHERE party_id = $1")
        .bind(from)
        .bind(into)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE party SET merged_into = $2 WHERE merged_into = $1")
        .bind(from)
        .bind(into)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE party SET status = 'MERGED', merged_into = $2, updated_at = now() WHERE party_id = $1")
        .bind(from)
        .bind(into)
        .execute(&mut *tx)
        .await?;
    history::append(tx, from, "ABSORBED", None, None, Some(&json!({ "merged_into": into })), actor).await?;
    history::append(tx, into, "MERGED", None, None, Some(&json!({ "absorbed": from })), actor).await
}

/// A source record as survivorship reads it.
#[derive(sqlx::FromRow)]
pub(super) struct RecordRow {
    pub party_id: i64,
    source_system: String,
    source_customer_id: String,
    attributes: Value,
    quality_flags: Vec<String>,
    updated_at: OffsetDateTime,
}

impl RecordRow {
    /// (system, id, attributes, flags, updated at µs), as [`survive`] takes it.
    pub fn into_survivorship(self) -> (String, String, Value, Vec<String>, i64) {
        (self.source_system, self.source_customer_id, self.attributes, self.quality_flags, micros(self.updated_at))
    }
}

/// A party row as stored (its golden record and lineage are JSON objects).
#[derive(sqlx::FromRow)]
pub(super) struct PartyRow {
    party_id: i64,
    customer_number: String,
    party_kind: String,
    golden: Value,
    lineage: Value,
    quality_flags: Vec<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl PartyRow {
    /// The customer, with its source keys.
    pub fn into_customer(self, sources: Vec<(String, String)>) -> StoredCustomer {
        let object = |v: Value| match v {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        StoredCustomer {
            party_id: self.party_id,
            customer_number: self.customer_number,
            party_kind: self.party_kind,
            golden: object(self.golden),
            lineage: object(self.lineage),
            quality_flags: self.quality_flags,
            sources,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// Where a read of a customer starts; merges are followed from there.
enum Start<'a> {
    Party(i64),
    Number(&'a str),
}

/// The surviving party of `start` with its source keys, if there is one.
async fn load_survivor(pool: &PgPool, start: Start<'_>) -> Result<Option<StoredCustomer>> {
    let query = match start {
        Start::Party(id) => sqlx::query_as::<_, PartyRow>(
            "SELECT party_id, customer_number, party_kind, golden, lineage, quality_flags, created_at, updated_at
             FROM party WHERE party_id = surviving_party($1)",
        )
        .bind(id),
        Start::Number(number) => sqlx::query_as::<_, PartyRow>(
            "SELECT party_id, customer_number, party_kind, golden, lineage, quality_flags, created_at, updated_at
             FROM party WHERE party_id = surviving_party((SELECT party_id FROM party WHERE customer_number = $1))",
        )
        .bind(number),
    };
    let Some(row) = query.fetch_optional(pool).await? else {
        return Ok(None);
    };
    let sources = sqlx::query_as::<_, (String, String)>(
        "SELECT source_system, source_customer_id FROM source_record WHERE party_id = $1 ORDER BY source_system, source_customer_id",
    )
    .bind(row.party_id)
    .fetch_all(pool)
    .await?;
    Ok(Some(row.into_customer(sources)))
}

/// The golden record by customer number (absorbed numbers resolve to the survivor).
pub async fn customer_by_number(pool: &PgPool, number: &str) -> Result<StoredCustomer> {
    load_survivor(pool, Start::Number(number)).await?.ok_or_else(|| Error::NotFound(format!("customer {number}")))
}

/// The golden record of the customer a source record belongs to.
pub async fn customer_by_source(pool: &PgPool, system: &str, id: &str) -> Result<StoredCustomer> {
    let party: Option<i64> =
        sqlx::query_scalar("SELECT party_id FROM source_record WHERE source_system = $1 AND source_customer_id = $2")
            .bind(system)
            .bind(id)
            .fetch_optional(pool)
            .await?;
    let party = party.ok_or_else(|| Error::NotFound(format!("source record {system}/{id}")))?;
    load_survivor(pool, Start::Party(party)).await?.ok_or_else(|| Error::NotFound(format!("party {party}")))
}
