//! Group commit for single upserts: records from concurrent calls are applied together
//! through the set-based path, in one transaction.
//!
//! One upsert alone costs a dozen statements and a commit. At hundreds of calls per
//! second, most of that is per-call overhead that a batch pays once; so calls queue for
//! one writer task, which applies whatever has queued while the previous batch was
//! being written. A lone call still goes at once (a batch of one); under load the
//! batch grows and the cost per call falls, instead of calls waiting on each other's
//! locks. Each call gets its own result; each event keeps its caller's trace.
//!
//! A batch that fails is retried record by record, so that one bad record fails only
//! its own call.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{PreparedRecord, UpsertResult, retryable, upsert_prepared_in};
use crate::domain::TrustTable;
use crate::error::{Error, Result};
use crate::pii::PiiCipher;

/// Where a call waits for its record's result.
type Reply = oneshot::Sender<Result<UpsertResult>>;

struct Job {
    record: PreparedRecord,
    actor: Option<String>,
    reply: Reply,
}

/// The handle calls queue their records on; cheap to clone.
#[derive(Debug, Clone)]
pub struct UpsertQueue {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("actor", &self.actor).finish_non_exhaustive()
    }
}

impl UpsertQueue {
    /// Starts the writer task; it ends when the last handle is dropped, after applying
    /// what was queued.
    pub fn start(pool: sqlx::PgPool, trust: Arc<TrustTable>, pii: Arc<PiiCipher>, max_batch: usize) -> Self {
        let (jobs, mut queued) = mpsc::channel::<Job>(max_batch * 4);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(max_batch);
            while queued.recv_many(&mut batch, max_batch).await > 0 {
                apply(&pool, &trust, &pii, std::mem::take(&mut batch)).await;
            }
        });
        Self { jobs }
    }

    /// Applies `record` (with the next batch) and returns what it did.
    pub async fn upsert(&self, record: PreparedRecord, actor: Option<&str>) -> Result<UpsertResult> {
        let (reply, answer) = oneshot::channel();
        let job = Job { record, actor: actor.map(str::to_string), reply };
        self.jobs.send(job).await.map_err(|_| Error::Unavailable("the upsert writer has stopped".into()))?;
        answer.await.map_err(|_| Error::Unavailable("the upsert writer stopped before answering".into()))?
    }
}

async fn apply(pool: &sqlx::PgPool, trust: &TrustTable, pii: &PiiCipher, jobs: Vec<Job>) {
    let (records, callers): (Vec<PreparedRecord>, Vec<(Option<String>, Reply)>) =
        jobs.into_iter().map(|j| (j.record, (j.actor, j.reply))).unzip();
    let actors: Vec<Option<&str>> = callers.iter().map(|(a, _)| a.as_deref()).collect();
    match apply_together(pool, trust, pii, &records, &actors).await {
        Ok(results) => {
            for ((_, reply), result) in callers.into_iter().zip(results) {
                // A caller that gave up (timeout, cancel) no longer listens.
                let _ = reply.send(Ok(result));
            }
        }
        Err(e) if records.len() == 1 => {
            if let Some((_, reply)) = callers.into_iter().next() {
                let _ = reply.send(Err(e));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, records = records.len(), "grouped upsert failed; applying its records one by one");
            for (record, (actor, reply)) in records.iter().zip(callers) {
                let result = apply_together(pool, trust, pii, std::slice::from_ref(record), &[actor.as_deref()]).await;
                let _ = reply.send(result.map(|mut r| r.remove(0)));
            }
        }
    }
}

/// All `records` in one transaction; consecutive records of one caller share a call of
/// the set-based path (history and events name each record's own caller).
async fn apply_together(
    pool: &sqlx::PgPool,
    trust: &TrustTable,
    pii: &PiiCipher,
    records: &[PreparedRecord],
    actors: &[Option<&str>],
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
