//! SQL of maintained details and extended attributes.

use std::collections::{BTreeMap, HashMap};

use crm_platform::messaging::outbox;
use crm_proto::crm::customer::v1 as pb;
use serde_json::json;
use sqlx::{PgConnection, PgPool};

use super::{EVENT_SOURCE, history};
use crate::error::{Error, Result};

/// The active party of a (surviving) customer number, locked for the change.
async fn lock_active(tx: &mut PgConnection, number: &str) -> Result<i64> {
    let party: Option<i64> =
        sqlx::query_scalar("SELECT party_id FROM party WHERE customer_number = $1 AND status = 'ACTIVE' FOR UPDATE")
            .bind(number)
            .fetch_optional(&mut *tx)
            .await?;
    // A merge between the caller's read and this write: the caller retries.
    party.ok_or_else(|| Error::Conflict(format!("customer {number} was merged meanwhile")))
}

async fn announce(tx: &mut PgConnection, number: &str, what: String, actor: Option<&str>) -> Result<()> {
    let event = pb::CustomerUpdated {
        customer_number: number.into(),
        changed_attributes: vec![what],
        source: None,
        demographics: None,
    };
    outbox::write_event(tx, EVENT_SOURCE, number, &event, actor).await?;
    Ok(())
}

/// Stores a detail (payload = encoded `PartyDetail`, PII encrypted) on the customer
/// with surviving number `number`. Answers false when the same detail was stored.
pub async fn put_detail(
    pool: &PgPool,
    number: &str,
    detail_id: &str,
    kind: &str,
    payload: &[u8],
    actor: Option<&str>,
) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let party = lock_active(&mut tx, number).await?;
    let current: Option<(String, Vec<u8>)> =
        sqlx::query_as("SELECT kind, payload FROM party_detail WHERE party_id = $1 AND detail_id = $2")
            .bind(party)
            .bind(detail_id)
            .fetch_optional(&mut *tx)
            .await?;
    if current.as_ref().is_some_and(|(k, p)| k == kind && p == payload) {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO party_detail (party_id, detail_id, kind, payload) VALUES ($1, $2, $3, $4)
         ON CONFLICT (party_id, detail_id) DO UPDATE SET kind = excluded.kind, payload = excluded.payload, updated_at = now()",
    )
    .bind(party)
    .bind(detail_id)
    .bind(kind)
    .bind(payload)
    .execute(&mut *tx)
    .await?;
    let before = current.map(|(k, _)| json!({"detail_id": detail_id, "kind": k}));
    let after = json!({"detail_id": detail_id, "kind": kind});
    history::append(&mut tx, party, "DETAIL_PUT", None, before.as_ref(), Some(&after), actor).await?;
    announce(&mut tx, number, format!("detail:{detail_id}"), actor).await?;
    tx.commit().await?;
    Ok(true)
}

/// Removes a detail; false when there was none.
pub async fn remove_detail(pool: &PgPool, number: &str, detail_id: &str, actor: Option<&str>) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let party = lock_active(&mut tx, number).await?;
    let removed: Option<(String,)> =
        sqlx::query_as("DELETE FROM party_detail WHERE party_id = $1 AND detail_id = $2 RETURNING kind")
            .bind(party)
            .bind(detail_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((kind,)) = removed else { return Ok(false) };
    let before = json!({"detail_id": detail_id, "kind": kind});
    history::append(&mut tx, party, "DETAIL_REMOVED", None, Some(&before), None, actor).await?;
    announce(&mut tx, number, format!("detail:{detail_id}"), actor).await?;
    tx.commit().await?;
    Ok(true)
}

/// Sets and removes extended attributes; answers all of them afterwards.
pub async fn set_extended(
    pool: &PgPool,
    number: &str,
    set: &HashMap<String, String>,
    remove: &[String],
    actor: Option<&str>,
) -> Result<BTreeMap<String, String>> {
    let mut tx = pool.begin().await?;
    let party = lock_active(&mut tx, number).await?;
    let before = extended_in(&mut tx, party).await?;
    let (keys, values): (Vec<&String>, Vec<&String>) = set.iter().unzip();
    sqlx::query(
        "INSERT INTO party_extended_attribute (party_id, key, value) SELECT $1, k, v FROM unnest($2::text[], $3::text[]) AS t(k, v)
         ON CONFLICT (party_id, key) DO UPDATE SET value = excluded.value, updated_at = now()",
    )
    .bind(party)
    .bind(keys)
    .bind(values)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM party_extended_attribute WHERE party_id = $1 AND key = ANY($2)")
        .bind(party)
        .bind(remove)
        .execute(&mut *tx)
        .await?;
    let after = extended_in(&mut tx, party).await?;
    if after != before {
        let changed: Vec<&String> =
            before.keys().chain(after.keys()).filter(|k| before.get(*k) != after.get(*k)).collect();
        history::append(&mut tx, party, "EXTENDED_UPDATED", None, Some(&json!(before)), Some(&json!(after)), actor)
            .await?;
        let what = format!("extended:{}", changed.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(","));
        announce(&mut tx, number, what, actor).await?;
    }
    tx.commit().await?;
    Ok(after)
}

async fn extended_in(conn: &mut PgConnection, party: i64) -> Result<BTreeMap<String, String>> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT key, value FROM party_extended_attribute WHERE party_id = $1 ORDER BY key")
            .bind(party)
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows.into_iter().collect())
}

/// On a merge the survivor takes the absorbed party's details; a detail id both have
/// keeps the survivor's, and the absorbed one's stays under `<id>~<absorbed party>`.
/// Extended attributes: the survivor's values win.
pub(super) async fn absorb_details(tx: &mut PgConnection, from: i64, into: i64) -> Result<()> {
    sqlx::query(
        "UPDATE party_detail d SET party_id = $2,
                detail_id = CASE WHEN EXISTS (SELECT 1 FROM party_detail s WHERE s.party_id = $2 AND s.detail_id = d.detail_id)
                                 THEN d.detail_id || '~' || $1::text ELSE d.detail_id END
         WHERE d.party_id = $1",
    )
    .bind(from)
    .bind(into)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO party_extended_attribute (party_id, key, value, updated_at)
         SELECT $2, key, value, updated_at FROM party_extended_attribute WHERE party_id = $1
         ON CONFLICT (party_id, key) DO NOTHING",
    )
    .bind(from)
    .bind(into)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM party_extended_attribute WHERE party_id = $1").bind(from).execute(&mut *tx).await?;
    Ok(())
}
