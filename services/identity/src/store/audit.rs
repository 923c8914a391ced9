//! Identity's audit trail (`identity_audit`): one entry per change, login and token
//! decision, written in the transaction of what it records; read newest first.

use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

use crate::error::Result;

/// Who did something, from where: the audit trail's "who" for one call.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    /// Subject, or the login attempted for failed logins.
    pub subject: String,
    /// Peer address of the call.
    pub source_address: Option<String>,
}

/// Appends one audit entry inside `tx`.
pub async fn audit(
    tx: &mut PgConnection,
    actor: &Actor,
    action: &str,
    target: Option<&str>,
    details: Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO identity_audit (actor, action, target, source_address, details) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&actor.subject)
    .bind(action)
    .bind(target)
    .bind(&actor.source_address)
    .bind(details)
    .execute(tx)
    .await?;
    Ok(())
}

/// One stored audit entry.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AuditEntry {
    /// Increasing with time; the paging position.
    pub audit_id: i64,
    /// When the transaction that wrote it began.
    pub occurred_at: OffsetDateTime,
    /// Subject of the caller, the login attempted, or `system`.
    pub actor: String,
    /// What happened, `thing.verb` (`user.created`, `login.failed`, …).
    pub action: String,
    /// What it happened to (org id, role code, subject, key id), if anything.
    pub target: Option<String>,
    /// Peer address of the call, if it came over the network.
    pub source_address: Option<String>,
    /// Action-specific facts (before/after, reasons).
    pub details: Value,
}

/// Audit entries, newest first, before `before` (0 = newest), filtered.
pub async fn list_audit(
    pool: &PgPool,
    actor: Option<&str>,
    action: Option<&str>,
    before: i64,
    limit: i64,
) -> Result<Vec<AuditEntry>> {
    Ok(sqlx::query_as::<_, AuditEntry>(
        "SELECT audit_id, occurred_at, actor, action, target, source_address, details FROM identity_audit
         WHERE ($1::text IS NULL OR actor = $1) AND ($2::text IS NULL OR action = $2) AND ($3 = 0 OR audit_id < $3)
         ORDER BY audit_id DESC LIMIT $4",
    )
    .bind(actor)
    .bind(action)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
