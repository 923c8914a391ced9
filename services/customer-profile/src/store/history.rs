//! Golden-record history: every change of a party (created, updated, merged,
//! absorbed, unmerged, details and extended attributes changed), appended in the
//! transaction of the change, and read newest first.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

use super::customer_by_number;
use crate::domain::history_changes;
use crate::error::Result;

/// Appends a history entry of `party_id` (`kind`: CREATED, UPDATED, ...) with the
/// source record that caused it and what it was before and after.
pub(super) async fn append(
    tx: &mut PgConnection,
    party_id: i64,
    kind: &str,
    source: Option<(&str, &str)>,
    before: Option<&Value>,
    after: Option<&Value>,
    actor: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO party_history (party_id, actor, change_kind, source_system, source_customer_id, before, after)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(party_id)
    .bind(actor)
    .bind(kind)
    .bind(source.map(|s| s.0))
    .bind(source.map(|s| s.1))
    .bind(before)
    .bind(after)
    .execute(tx)
    .await?;
    Ok(())
}

/// History entries of a party, newest first (for the 360° view and audits).
pub async fn party_history(pool: &PgPool, number: &str, limit: i64) -> Result<Vec<BTreeMap<String, Value>>> {
    let rows = sqlx::query_as::<_, (String, Option<String>, Option<String>)>(
        "SELECT h.change_kind, h.actor, h.source_system
         FROM party_history h JOIN party p ON p.party_id = h.party_id
         WHERE p.customer_number = $1 ORDER BY h.history_id DESC LIMIT $2",
    )
    .bind(number)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(kind, actor, system)| {
            BTreeMap::from([
                ("change_kind".into(), json!(kind)),
                ("actor".into(), json!(actor)),
                ("source_system".into(), json!(system)),
            ])
        })
        .collect())
}

/// One golden-record change.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    /// Paging key.
    pub id: i64,
    /// CREATED, UPDATED, MERGED, ABSORBED, UNMERGED.
    pub change_kind: String,
    /// When.
    pub changed_at: OffsetDateTime,
    /// Who.
    pub actor: Option<String>,
    /// The source record that caused it.
    pub source: Option<(String, String)>,
    /// Names of golden attributes that changed.
    pub changed_attributes: Vec<String>,
}

impl HistoryRow {
    /// The entry `id` of kind `change_kind`; the changed attributes are found by
    /// comparing `before` and `after` ([`history_changes`]).
    pub(super) fn of(
        id: i64,
        change_kind: String,
        changed_at: OffsetDateTime,
        actor: Option<String>,
        source: Option<(String, String)>,
        before: Option<&Value>,
        after: Option<&Value>,
    ) -> Self {
        let changed_attributes = history_changes(&change_kind, before, after);
        Self { id, change_kind, changed_at, actor, source, changed_attributes }
    }
}

/// A history entry as stored.
#[derive(sqlx::FromRow)]
struct Entry {
    history_id: i64,
    change_kind: String,
    changed_at: OffsetDateTime,
    actor: Option<String>,
    source_system: Option<String>,
    source_customer_id: Option<String>,
    before: Option<Value>,
    after: Option<Value>,
}

/// Golden-record changes of a customer (absorbed numbers resolve to the survivor),
/// newest first, before history id `before` (0: from the newest).
pub async fn customer_history(pool: &PgPool, number: &str, before: i64, limit: i64) -> Result<Vec<HistoryRow>> {
    let customer = customer_by_number(pool, number).await?;
    history_of(pool, customer.party_id, before, limit).await
}

async fn history_of(pool: &PgPool, party_id: i64, before: i64, limit: i64) -> Result<Vec<HistoryRow>> {
    let rows = sqlx::query_as::<_, Entry>(
        "SELECT h.history_id, h.change_kind, h.changed_at, h.actor, h.source_system, h.source_customer_id, h.before, h.after
         FROM party_history h
         WHERE h.party_id = $1 AND ($2 = 0 OR h.history_id < $2)
         ORDER BY h.history_id DESC LIMIT $3",
    )
    .bind(party_id)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|e| {
            HistoryRow::of(
                e.history_id,
                e.change_kind,
                e.changed_at,
                e.actor,
                e.source_system.zip(e.source_customer_id),
                e.before.as_ref(),
                e.after.as_ref(),
            )
        })
        .collect())
}
