//! Who looks after a customer (home org, primary and related RMs): changes applied
//! all or nothing with their history and `CustomerAssigned` events (the rule of a
//! change is [`crate::domain::assign`]), and the assignment history.

use crm_platform::messaging::outbox;
use crm_proto::crm::customer::v1 as pb;
use sqlx::PgPool;
use time::OffsetDateTime;

use super::{EVENT_SOURCE, customer_by_number};
pub use crate::domain::AssignmentChange;
use crate::domain::{Assigned, apply_change};
use crate::error::{Error, Result};

/// Who looks after a customer, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssignmentRow {
    /// Customer number.
    pub customer_number: String,
    /// Home org.
    pub home_org_id: Option<String>,
    /// Primary RM.
    pub primary_rm_id: Option<String>,
    /// Related RMs.
    pub related_rm_ids: Vec<String>,
    /// Last change.
    pub updated_at: Option<OffsetDateTime>,
}

/// Applies `change` to every customer in `numbers` in one transaction (all or
/// nothing), with history and a `CustomerAssigned` event each. Absorbed customer
/// numbers apply to their survivor.
pub async fn change_assignments(
    pool: &PgPool,
    numbers: &[String],
    change: &AssignmentChange,
    reason: &str,
    actor: Option<&str>,
) -> Result<Vec<AssignmentRow>> {
    let mut tx = pool.begin().await?;
    let mut out = Vec::with_capacity(numbers.len());
    for number in numbers {
        let party: Option<(i64, String)> = sqlx::query_as(
            "SELECT party_id, customer_number FROM party
             WHERE party_id = surviving_party((SELECT party_id FROM party WHERE customer_number = $1))",
        )
        .bind(number)
        .fetch_optional(&mut *tx)
        .await?;
        let (party_id, survivor) = party.ok_or_else(|| Error::NotFound(format!("customer {number}")))?;
        let before = sqlx::query_as::<_, (Option<String>, Option<String>, Vec<String>)>(
            "SELECT home_org_id, primary_rm_id, related_rm_ids FROM party_assignment WHERE party_id = $1 FOR UPDATE",
        )
        .bind(party_id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|(home_org_id, primary_rm_id, related_rm_ids)| Assigned {
            home_org_id,
            primary_rm_id,
            related_rm_ids,
        });
        let (action, Assigned { home_org_id: org, primary_rm_id: primary, related_rm_ids: related }) =
            apply_change(before.as_ref(), change);
        let updated_at: OffsetDateTime = sqlx::query_scalar(
            "INSERT INTO party_assignment (party_id, home_org_id, primary_rm_id, related_rm_ids, updated_at)
             VALUES ($1, $2, $3, $4, now())
             ON CONFLICT (party_id) DO UPDATE SET home_org_id = EXCLUDED.home_org_id,
                 primary_rm_id = EXCLUDED.primary_rm_id, related_rm_ids = EXCLUDED.related_rm_ids, updated_at = now()
             RETURNING updated_at",
        )
        .bind(party_id)
        .bind(&org)
        .bind(&primary)
        .bind(&related)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO assignment_history (party_id, action, home_org_id, primary_rm_id, related_rm_ids, actor, reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(party_id)
        .bind(action.code())
        .bind(&org)
        .bind(&primary)
        .bind(&related)
        .bind(actor)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        let row = AssignmentRow {
            customer_number: survivor.clone(),
            home_org_id: org,
            primary_rm_id: primary,
            related_rm_ids: related,
            updated_at: Some(updated_at),
        };
        outbox::write_event(
            &mut tx,
            EVENT_SOURCE,
            &survivor,
            &pb::CustomerAssigned {
                action: pb::AssignmentAction::from(action) as i32,
                assignment: Some(pb::Assignment::from(&row)),
            },
            actor,
        )
        .await?;
        out.push(row);
    }
    tx.commit().await?;
    Ok(out)
}

/// One stored assignment change.
#[derive(Debug, Clone)]
pub struct AssignmentHistoryRow {
    /// Paging key.
    pub id: i64,
    /// ASSIGN / ADJUST / RECALL.
    pub action: String,
    /// The assignment after the change.
    pub assignment: AssignmentRow,
    /// Who.
    pub actor: Option<String>,
    /// Why.
    pub reason: Option<String>,
}

/// Assignment changes of a customer (and of customers it absorbed), newest first,
/// before history id `before` (0: from the newest).
pub async fn assignment_history(
    pool: &PgPool,
    number: &str,
    before: i64,
    limit: i64,
) -> Result<Vec<AssignmentHistoryRow>> {
    let customer = customer_by_number(pool, number).await?;
    let rows = sqlx::query_as::<_, HistoryEntry>(
        "SELECT h.history_id, h.action, h.home_org_id, h.primary_rm_id, h.related_rm_ids, h.actor, h.reason, h.changed_at
         FROM assignment_history h JOIN party p ON p.party_id = h.party_id
         WHERE p.customer_number = $1 AND ($2 = 0 OR h.history_id < $2)
         ORDER BY h.history_id DESC LIMIT $3",
    )
    .bind(&customer.customer_number)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|h| AssignmentHistoryRow {
            id: h.history_id,
            action: h.action,
            assignment: AssignmentRow {
                customer_number: customer.customer_number.clone(),
                home_org_id: h.home_org_id,
                primary_rm_id: h.primary_rm_id,
                related_rm_ids: h.related_rm_ids,
                updated_at: Some(h.changed_at),
            },
            actor: h.actor,
            reason: h.reason,
        })
        .collect())
}

/// An assignment change as stored.
#[derive(sqlx::FromRow)]
struct HistoryEntry {
    history_id: i64,
    action: String,
    home_org_id: Option<String>,
    primary_rm_id: Option<String>,
    related_rm_ids: Vec<String>,
    actor: Option<String>,
    reason: Option<String>,
    changed_at: OffsetDateTime,
}
