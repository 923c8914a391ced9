//! Suspect pairs: identities with the same ID type and number under different names,
//! in different parties, waiting for a data steward; and the steward's decision
//! (merge, or "different parties" for good).

use crm_platform::messaging::outbox;
use crm_proto::crm::customer::v1 as pb;
use sqlx::PgPool;
use time::OffsetDateTime;

use super::parties::{absorb, recompute};
use super::{EVENT_SOURCE, Visibility, advisory_lock, bulk, customer_number_of, customer_number_of_pool, lock_key};
use crate::domain::TrustTable;
use crate::error::{Error, Result};

/// An open suspect pair with both sides resolved to their current customers.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredSuspect {
    /// Pair id.
    pub id: i64,
    /// Side A's customer.
    pub customer_a: String,
    /// Side B's customer.
    pub customer_b: String,
    /// ID type code.
    pub id_type: String,
    /// The shared ID number, as stored (encrypted) in side A's golden record.
    pub id_number: String,
    /// Side A's golden name.
    pub name_a: String,
    /// Side B's golden name.
    pub name_b: String,
    /// When found.
    pub created_at: OffsetDateTime,
}

/// Open suspect pairs after `after_id`, oldest first, skipping pairs whose sides have
/// since become one customer, and pairs with a side outside `visibility`.
pub async fn open_suspects(
    pool: &PgPool,
    after_id: i64,
    limit: i64,
    visibility: &Visibility,
) -> Result<Vec<StoredSuspect>> {
    let (scope, arg) = visibility.sql_args();
    Ok(sqlx::query_as::<_, StoredSuspect>(
        "SELECT s.suspect_pair_id AS id, s.id_type, s.created_at,
                pa.customer_number AS customer_a, pb.customer_number AS customer_b,
                COALESCE(pa.golden->>'name', '') AS name_a, COALESCE(pb.golden->>'name', '') AS name_b,
                COALESCE(pa.golden->>'id_number', '') AS id_number
         FROM suspect_pair s
         JOIN identity_group ga ON ga.identity_digest = s.digest_a
         JOIN identity_group gb ON gb.identity_digest = s.digest_b
         JOIN party pa ON pa.party_id = ga.party_id
         JOIN party pb ON pb.party_id = gb.party_id
         WHERE s.status = 'OPEN' AND s.suspect_pair_id > $1 AND ga.party_id <> gb.party_id
           AND party_visible(pa.party_id, $3, $4) AND party_visible(pb.party_id, $3, $4)
         ORDER BY s.suspect_pair_id LIMIT $2",
    )
    .bind(after_id)
    .bind(limit)
    .bind(scope)
    .bind(arg)
    .fetch_all(pool)
    .await?)
}

/// A suspect pair as stored.
#[derive(sqlx::FromRow)]
struct PairRow {
    id_type: String,
    match_key: String,
    status: String,
    digest_a: String,
    digest_b: String,
}

/// Applies a data steward's decision. SAME_PARTY merges side B's customer into side
/// A's (the older customer number survives); DIFFERENT_PARTIES closes the pair for good.
pub async fn resolve_suspect(
    pool: &PgPool,
    trust: &TrustTable,
    id: i64,
    same_party: bool,
    actor: Option<&str>,
) -> Result<String> {
    let mut tx = pool.begin().await?;
    let pair = sqlx::query_as::<_, PairRow>(
        "SELECT id_type, match_key, status, digest_a, digest_b FROM suspect_pair WHERE suspect_pair_id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::NotFound(format!("suspect pair {id}")))?;
    // A steward's merge moves records between parties: exclusive, like bulk batches,
    // so that no partitioned batch (which holds the lock shared) runs beside it.
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(bulk::ECIF_LOCK).execute(&mut *tx).await?;
    advisory_lock(&mut tx, &lock_key(&pair.id_type, &pair.match_key)).await?;
    if pair.status != "OPEN" {
        return Err(Error::FailedPrecondition(format!("suspect pair {id} is already resolved ({})", pair.status)));
    }
    let party_of = |d: String| {
        sqlx::query_scalar::<_, i64>("SELECT party_id FROM identity_group WHERE identity_digest = $1").bind(d)
    };
    let pa = party_of(pair.digest_a).fetch_one(&mut *tx).await?;
    let pb_ = party_of(pair.digest_b).fetch_one(&mut *tx).await?;
    let (survivor, absorbed) = if pa <= pb_ { (pa, pb_) } else { (pb_, pa) };
    let new_status = if same_party { "SAME_PARTY" } else { "DIFFERENT_PARTIES" };
    sqlx::query(
        "UPDATE suspect_pair SET status = $2, resolved_at = now(), resolved_by = $3 WHERE suspect_pair_id = $1",
    )
    .bind(id)
    .bind(new_status)
    .bind(actor)
    .execute(&mut *tx)
    .await?;
    let survivor_number = customer_number_of(&mut tx, survivor).await?;
    if same_party && survivor != absorbed {
        let absorbed_number = customer_number_of(&mut tx, absorbed).await?;
        absorb(&mut tx, absorbed, survivor, actor).await?;
        let changed = recompute(&mut tx, trust, survivor).await?;
        outbox::write_event(
            &mut tx,
            EVENT_SOURCE,
            &survivor_number,
            &pb::CustomerMerged {
                surviving_customer_number: survivor_number.clone(),
                absorbed_customer_numbers: vec![absorbed_number],
                reason: "STEWARD".into(),
            },
            actor,
        )
        .await?;
        if !changed.is_empty() {
            let golden: serde_json::Value = sqlx::query_scalar("SELECT golden FROM party WHERE party_id = $1")
                .bind(survivor)
                .fetch_one(&mut *tx)
                .await?;
            outbox::write_event(
                &mut tx,
                EVENT_SOURCE,
                &survivor_number,
                &pb::CustomerUpdated {
                    customer_number: survivor_number.clone(),
                    changed_attributes: changed,
                    source: None,
                    demographics: Some(crate::convert::demographics(&golden)),
                },
                actor,
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(if same_party { survivor_number } else { customer_number_of_pool(pool, pa).await? })
}
