//! Group commit for single upserts and audit entries ([`crm_platform::group_commit`]):
//! records and entries from concurrent calls are written together, each call still
//! answered with its own result after its write is durable.
//!
//! Upserts go through the set-based path ([`super::bulk`]); consecutive records of one
//! caller share one call of it, so history and events name each record's own caller,
//! and each event keeps its caller's trace. A record's audit entry commits in the same
//! transaction as the record. A group that fails is retried item by item,
//! so that one bad item fails only its own call.

use std::sync::Arc;

use crm_platform::group_commit::{GroupCommit, Writer};

use crm_platform::audit::record_in as audit_in;

use super::{AuditEntry, PreparedRecord, UpsertResult, retryable, upsert_prepared_in};
use crate::domain::TrustTable;
use crate::error::{Error, Result};
use crate::pii::PiiCipher;

/// Most items written in one transaction.
const MAX_GROUP: usize = 256;

fn stopped(_: crm_platform::group_commit::WriterStopped) -> Error {
    Error::Unavailable("the group-commit writer has stopped".into())
}

/// A record, its caller, and the audit entry to store with it when it changes
/// something (customer number and outcome are filled in once known).
type Job = (PreparedRecord, Option<String>, Option<AuditEntry>);

/// Single upserts of concurrent calls, applied together.
#[derive(Debug, Clone)]
pub struct UpsertWriter {
    writer: GroupCommit<Job, Result<UpsertResult>>,
}

impl UpsertWriter {
    /// The handle and its writer, to run as a background task of the service.
    pub fn new(pool: sqlx::PgPool, trust: Arc<TrustTable>, pii: Arc<PiiCipher>) -> (Self, Writer) {
        let (writer, task) = GroupCommit::new(MAX_GROUP, move |jobs: Vec<Job>| {
            let (pool, trust, pii) = (pool.clone(), trust.clone(), pii.clone());
            async move { apply(&pool, &trust, &pii, jobs).await }
        });
        (Self { writer }, task)
    }

    /// Applies `record` with the next group and returns what it did; `audit`, unless
    /// the record changed nothing, is stored in the same transaction.
    pub async fn upsert(
        &self,
        record: PreparedRecord,
        actor: Option<&str>,
        audit: Option<AuditEntry>,
    ) -> Result<UpsertResult> {
        self.writer.submit((record, actor.map(str::to_string), audit)).await.map_err(stopped)?
    }
}

async fn apply(pool: &sqlx::PgPool, trust: &TrustTable, pii: &PiiCipher, jobs: Vec<Job>) -> Vec<Result<UpsertResult>> {
    let mut records = Vec::with_capacity(jobs.len());
    let mut actors = Vec::with_capacity(jobs.len());
    let mut audits = Vec::with_capacity(jobs.len());
    for (record, actor, audit) in jobs {
        records.push(record);
        actors.push(actor);
        audits.push(audit);
    }
    let actors: Vec<Option<&str>> = actors.iter().map(Option::as_deref).collect();
    match apply_together(pool, trust, pii, &records, &actors, &audits).await {
        Ok(results) => results.into_iter().map(Ok).collect(),
        Err(e) if records.len() == 1 => vec![Err(e)],
        Err(e) => {
            tracing::warn!(error = %e, records = records.len(), "grouped upsert failed; applying its records one by one");
            let mut results = Vec::with_capacity(records.len());
            for i in 0..records.len() {
                let (record, audit) = (std::slice::from_ref(&records[i]), std::slice::from_ref(&audits[i]));
                let one = apply_together(pool, trust, pii, record, &actors[i..=i], audit).await;
                results.push(one.map(|mut r| r.remove(0)));
            }
            results
        }
    }
}

/// The audit entries of the records that changed something, completed with what the
/// upsert did.
pub(super) fn completed_audits(results: &[UpsertResult], audits: &[Option<AuditEntry>]) -> Vec<AuditEntry> {
    results
        .iter()
        .zip(audits)
        .filter(|(r, _)| r.outcome != crate::domain::UpsertOutcome::Unchanged)
        .filter_map(|(r, a)| {
            let mut entry = a.clone()?;
            entry.subject = Some(r.customer_number.clone());
            if let Some(details) = entry.details.as_object_mut() {
                details.insert("outcome".into(), format!("UPSERT_OUTCOME_{}", r.outcome.code()).into());
            }
            Some(entry)
        })
        .collect()
}

/// All `records` in one transaction with their audit entries (`audits`: one per
/// record, or none), retried from the start on a deadlock.
pub(super) async fn apply_together(
    pool: &sqlx::PgPool,
    trust: &TrustTable,
    pii: &PiiCipher,
    records: &[PreparedRecord],
    actors: &[Option<&str>],
    audits: &[Option<AuditEntry>],
) -> Result<Vec<UpsertResult>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut tx = pool.begin().await?;
        let mut results = Vec::with_capacity(records.len());
        let mut start = 0;
        let mut failed = None;
        while start < records.len() {
            let actor = actors[start];
            let end = (start..records.len()).find(|i| actors[*i] != actor).unwrap_or(records.len());
            match upsert_prepared_in(&mut tx, trust, pii, &records[start..end], actor).await {
                Ok(r) => results.extend(r),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
            start = end;
        }
        if failed.is_none()
            && let Err(e) = audit_in(&mut tx, &completed_audits(&results, audits)).await
        {
            failed = Some(e.into());
        }
        let outcome = match failed {
            None => tx.commit().await.map_err(Error::from).map(|()| results),
            Some(e) => Err(e),
        };
        match outcome {
            Err(e) if attempt < 4 && retryable(&e) => continue,
            other => return other,
        }
    }
}
