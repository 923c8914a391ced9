//! The revaluer: the background task that keeps derived data current. Ingestion only
//! stores facts and marks their customers due ([`store::revaluation`]); the revaluer
//! takes due customers in batches (`analytics.revaluation_batch`), recomputes their
//! value, level history, months and rule tags, and rescores the RFM population when it
//! has revalued anyone — when the queue is empty, or at most every
//! `analytics.rfm_rescore_interval_ms` while it is not (a rescore reads the whole
//! population, so a steady stream of facts must not trigger one per batch).
//!
//! Every replica runs one; they share the queue without taking a customer twice. A
//! failing round is logged and retried after a pause; nothing due is lost (the queue
//! is in the database).

use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::settings::AnalyticsSettings;
use crate::store;

/// Runs until `stop` is cancelled.
pub async fn run(pool: PgPool, settings: AnalyticsSettings, stop: CancellationToken) {
    let batch = i64::try_from(settings.revaluation_batch).unwrap_or(i64::MAX);
    let idle = Duration::from_millis(settings.revaluation_idle_poll_ms);
    let rescore_every = Duration::from_millis(settings.rfm_rescore_interval_ms);
    // Facts may have changed while no revaluer ran: rescore once at start.
    let mut rescore_pending = true;
    let mut rescored = Instant::now();
    while !stop.is_cancelled() {
        let round = store::revaluation::revalue_due(&pool, batch).await;
        let pause = match round {
            Ok(revalued) => {
                rescore_pending |= revalued > 0;
                let queue_empty = usize::try_from(batch).is_ok_and(|b| revalued < b);
                if rescore_pending && (queue_empty || rescored.elapsed() >= rescore_every) {
                    match store::revaluation::rescore(&pool).instrument(tracing::info_span!("rescore rfm")).await {
                        Ok(_) => {
                            rescore_pending = false;
                            rescored = Instant::now();
                        }
                        Err(e) => tracing::warn!(error = %e, "rfm rescore failed; retrying"),
                    }
                }
                if revalued == 0 { Some(idle) } else { None }
            }
            Err(e) => {
                tracing::warn!(error = %e, "revaluation round failed; retrying");
                Some(idle.max(Duration::from_millis(500)))
            }
        };
        if let Some(pause) = pause {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}
