//! The audit trail, one for every service: who did what to which subject, when, from
//! where and under which trace, in the kit's table `crm_kit.audit_entry`.
//!
//! - A change records its entries with [`record_in`] inside its own transaction, so an
//!   entry exists if and only if the change committed.
//! - A read that must be audited before it answers (a full 360° view) hands its entries
//!   to the [`AuditWriter`], a group commit: concurrent calls share one insert.
//! - Auditors page through the trail newest first with [`read`], filtered by actor,
//!   subject, action and time; pages use the kit's page token.
//!
//! Entries come from [`crate::context::CallContext::audit`], so every service records
//! the same "who" the same way.

use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

use crate::group_commit::{GroupCommit, Writer, WriterStopped};
use crate::paging::Page;

/// One entry of the audit trail.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entry {
    /// Subject of the actor (user id, client id, `system`, or the login tried).
    pub actor: String,
    /// Login or client id of the actor.
    pub actor_name: String,
    /// What was done, e.g. `customer.view_360`, `login.failed`, `role.updated`.
    pub action: String,
    /// What it was done to (a customer number, user id, role code, org id), if anything.
    pub subject: Option<String>,
    /// Peer address of the call.
    pub source_address: Option<String>,
    /// Trace of the call in the tracing backend.
    pub trace_id: Option<String>,
    /// Details without secrets or personal data, JSON.
    pub details: Value,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredEntry {
    /// Position in the trail (paging key).
    pub audit_id: i64,
    /// When it was recorded.
    pub occurred_at: OffsetDateTime,
    /// The entry.
    #[sqlx(flatten)]
    pub entry: Entry,
}

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for Entry {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(Self {
            actor: row.try_get("actor")?,
            actor_name: row.try_get("actor_name")?,
            action: row.try_get("action")?,
            subject: row.try_get("subject")?,
            source_address: row.try_get("source_address")?,
            trace_id: row.try_get("trace_id")?,
            details: row.try_get("details")?,
        })
    }
}

/// Which entries to read; filters combine with AND, `None` means any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Entries of this actor.
    pub actor: Option<String>,
    /// Entries about this subject.
    pub subject: Option<String>,
    /// Entries of this action.
    pub action: Option<String>,
    /// Entries at or after this instant.
    pub from: Option<OffsetDateTime>,
    /// Entries before this instant.
    pub until: Option<OffsetDateTime>,
}

/// Appends `entries` inside the caller's transaction: they commit with the change.
pub async fn record_in(conn: &mut PgConnection, entries: &[Entry]) -> Result<(), sqlx::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&Entry) -> Option<String>| entries.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO crm_kit.audit_entry (actor, actor_name, action, subject, source_address, trace_id, details)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[])",
    )
    .bind(column(|e| Some(e.actor.clone())))
    .bind(column(|e| Some(e.actor_name.clone())))
    .bind(column(|e| Some(e.action.clone())))
    .bind(column(|e| e.subject.clone()))
    .bind(column(|e| e.source_address.clone()))
    .bind(column(|e| e.trace_id.clone()))
    .bind(entries.iter().map(|e| e.details.clone()).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Appends `entries` in a transaction of their own.
pub async fn record(pool: &PgPool, entries: &[Entry]) -> Result<(), sqlx::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut conn = pool.acquire().await?;
    record_in(&mut conn, entries).await
}

/// One page of the trail, newest first: entries matching `filter` older than the
/// page's position (the newest when it is the first page).
pub async fn read(pool: &PgPool, filter: &Filter, page: &Page) -> Result<Vec<StoredEntry>, sqlx::Error> {
    sqlx::query_as::<_, StoredEntry>(
        "SELECT audit_id, occurred_at, actor, actor_name, action, subject, source_address, trace_id, details
         FROM crm_kit.audit_entry
         WHERE ($1::text IS NULL OR actor = $1) AND ($2::text IS NULL OR subject = $2)
           AND ($3::text IS NULL OR action = $3)
           AND ($4::timestamptz IS NULL OR occurred_at >= $4) AND ($5::timestamptz IS NULL OR occurred_at < $5)
           AND ($6 = 0 OR audit_id < $6)
         ORDER BY audit_id DESC LIMIT $7",
    )
    .bind(&filter.actor)
    .bind(&filter.subject)
    .bind(&filter.action)
    .bind(filter.from)
    .bind(filter.until)
    .bind(page.position())
    .bind(page.size)
    .fetch_all(pool)
    .await
}

/// Why the audit writer could not store entries.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The database refused or failed.
    #[error("audit trail: {0}")]
    Database(#[from] sqlx::Error),
    /// The writer has stopped (the service is going down).
    #[error(transparent)]
    Stopped(#[from] WriterStopped),
}

/// Entries of concurrent calls written together: a call must not answer before its
/// entry is stored, but a thousand calls a second need not pay a thousand commits.
#[derive(Debug, Clone)]
pub struct AuditWriter {
    group: GroupCommit<Vec<Entry>, Result<(), sqlx::Error>>,
}

/// Calls' entries in one insert at most.
const MAX_GROUP: usize = 256;

impl AuditWriter {
    /// The handle and its writer, to run as a background task of the service
    /// (`ServiceRuntime::task`).
    pub fn new(pool: PgPool) -> (Self, Writer) {
        let (group, writer) = GroupCommit::new(MAX_GROUP, move |calls: Vec<Vec<Entry>>| {
            let pool = pool.clone();
            async move {
                let all: Vec<Entry> = calls.iter().flatten().cloned().collect();
                match record(&pool, &all).await {
                    Ok(()) => calls.iter().map(|_| Ok(())).collect(),
                    Err(e) if calls.len() == 1 => vec![Err(e)],
                    // One call's bad entry must not fail the others: write each alone.
                    Err(_) => {
                        let mut results = Vec::with_capacity(calls.len());
                        for entries in &calls {
                            results.push(record(&pool, entries).await);
                        }
                        results
                    }
                }
            }
        });
        (Self { group }, writer)
    }

    /// Stores `entries` with the next group, then returns.
    pub async fn write(&self, entries: Vec<Entry>) -> Result<(), WriteError> {
        if entries.is_empty() {
            return Ok(());
        }
        Ok(self.group.submit(entries).await??)
    }
}
