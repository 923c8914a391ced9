//! SQL of data scope, the org directory and the access audit trail.

use serde_json::Value;
use sqlx::{PgConnection, PgPool, Row};
use time::OffsetDateTime;

use crate::error::Result;

/// Which customers a caller may see, as the database filters them
/// (the `party_visible` function of migration 0007).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// Every customer.
    All,
    /// Customers whose home org lies under this org path.
    Subtree(String),
    /// Customers of this org.
    Org(String),
    /// Customers this user is primary or related RM of.
    Own(String),
}

impl Visibility {
    /// The `(scope, arg)` pair `party_visible` takes.
    pub fn sql_args(&self) -> (&'static str, &str) {
        match self {
            Visibility::All => ("all", ""),
            Visibility::Subtree(path) => ("subtree", path),
            Visibility::Org(org) => ("org", org),
            Visibility::Own(subject) => ("own", subject),
        }
    }
}

/// Whether the party with this customer number is inside `visibility` (pass the
/// survivor's number: absorbed parties have no assignment of their own). `None` when
/// there is no such customer.
pub async fn customer_visible(pool: &PgPool, number: &str, visibility: &Visibility) -> Result<Option<bool>> {
    let (scope, arg) = visibility.sql_args();
    let row: Option<(bool,)> = sqlx::query_as(
        "SELECT party_visible(p.party_id, $2, $3)
         FROM party p WHERE p.customer_number = $1",
    )
    .bind(number)
    .bind(scope)
    .bind(arg)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(v,)| v))
}

/// Whether an org lies inside an org path (the org itself counts), by the directory.
pub async fn org_within(pool: &PgPool, org_id: &str, path: &str) -> Result<bool> {
    let own = path.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    if own == org_id {
        return Ok(true);
    }
    let row: Option<(bool,)> = sqlx::query_as("SELECT starts_with(path, $2) FROM org_directory WHERE org_id = $1")
        .bind(org_id)
        .bind(path)
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some_and(|(v,)| v))
}

/// Records an org's current path (from identity's `OrgChanged`).
pub async fn upsert_org(tx: &mut PgConnection, org_id: &str, path: &str, closed: bool) -> Result<()> {
    sqlx::query(
        "INSERT INTO org_directory (org_id, path, closed) VALUES ($1, $2, $3)
         ON CONFLICT (org_id) DO UPDATE SET path = excluded.path, closed = excluded.closed, updated_at = now()",
    )
    .bind(org_id)
    .bind(path)
    .bind(closed)
    .execute(tx)
    .await?;
    Ok(())
}

/// One entry of the access audit trail.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    /// Subject of the caller.
    pub actor: String,
    /// Login or client id of the caller.
    pub actor_name: String,
    /// What was done, e.g. `customer.view_360`, `customer.assign`.
    pub action: String,
    /// The customer concerned, if one.
    pub customer_number: Option<String>,
    /// Peer address of the call.
    pub source_address: Option<String>,
    /// Trace of the call, to find it in the tracing backend.
    pub trace_id: Option<String>,
    /// Non-PII details.
    pub details: Value,
}

/// A stored audit entry.
#[derive(Debug, Clone)]
pub struct StoredAudit {
    /// Paging key.
    pub audit_id: i64,
    /// When.
    pub occurred_at: OffsetDateTime,
    /// The entry.
    pub entry: AuditEntry,
}

/// Appends entries to the audit trail.
pub async fn audit(pool: &PgPool, entries: &[AuditEntry]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut conn = pool.acquire().await?;
    audit_in(&mut conn, entries).await
}

/// [`audit`] inside the caller's transaction: the entry commits with the change.
pub async fn audit_in(conn: &mut PgConnection, entries: &[AuditEntry]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut actors = Vec::new();
    let mut names = Vec::new();
    let mut actions = Vec::new();
    let mut numbers = Vec::new();
    let mut addresses = Vec::new();
    let mut traces = Vec::new();
    let mut details = Vec::new();
    for e in entries {
        actors.push(e.actor.clone());
        names.push(e.actor_name.clone());
        actions.push(e.action.clone());
        numbers.push(e.customer_number.clone());
        addresses.push(e.source_address.clone());
        traces.push(e.trace_id.clone());
        details.push(e.details.clone());
    }
    sqlx::query(
        "INSERT INTO access_audit (actor, actor_name, action, customer_number, source_address, trace_id, details)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[])",
    )
    .bind(actors)
    .bind(names)
    .bind(actions)
    .bind(numbers)
    .bind(addresses)
    .bind(traces)
    .bind(details)
    .execute(conn)
    .await?;
    Ok(())
}

/// Audit entries, newest first, before `before` (0 = from the newest), filtered.
pub async fn audit_trail(
    pool: &PgPool,
    customer_number: Option<&str>,
    actor: Option<&str>,
    before: i64,
    limit: i64,
) -> Result<Vec<StoredAudit>> {
    let rows = sqlx::query(
        "SELECT audit_id, occurred_at, actor, actor_name, action, customer_number, source_address, trace_id, details
         FROM access_audit
         WHERE ($1::text IS NULL OR customer_number = $1) AND ($2::text IS NULL OR actor = $2)
           AND ($3 = 0 OR audit_id < $3)
         ORDER BY audit_id DESC LIMIT $4",
    )
    .bind(customer_number)
    .bind(actor)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredAudit {
                audit_id: r.try_get("audit_id")?,
                occurred_at: r.try_get("occurred_at")?,
                entry: AuditEntry {
                    actor: r.try_get("actor")?,
                    actor_name: r.try_get("actor_name")?,
                    action: r.try_get("action")?,
                    customer_number: r.try_get("customer_number")?,
                    source_address: r.try_get("source_address")?,
                    trace_id: r.try_get("trace_id")?,
                    details: r.try_get("details")?,
                },
            })
        })
        .collect()
}
