//! The fact streams: balance snapshots and transactions. Messages are checked one by
//! one (a bad one is reported by its stream index and the rest load), stored in
//! batches of `facts_per_transaction`, each batch in one transaction with the
//! recompute of the customers it touched; a replayed stream changes nothing.

use std::collections::HashMap;

use crm_platform::FieldViolations;
use crm_proto::crm::analytics::v1 as pb;
use futures::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::AnalyticsApi;
use crate::convert;
use crate::domain::facts::{BalanceSnapshot, Transaction};
use crate::error::Error;
use crate::store::facts::Stored;

/// A fact of a stream: its natural key, its product, how a batch of them is stored.
trait Fact: Sized + Sync {
    fn key(&self) -> (&str, Option<time::Date>);
    fn product_code(&self) -> &str;
    async fn store(tx: &mut sqlx::PgConnection, facts: &[&Self]) -> crate::error::Result<Stored>;
}

impl Fact for BalanceSnapshot {
    fn key(&self) -> (&str, Option<time::Date>) {
        (&self.account_id, Some(self.date))
    }
    fn product_code(&self) -> &str {
        &self.product_code
    }
    async fn store(tx: &mut sqlx::PgConnection, facts: &[&Self]) -> crate::error::Result<Stored> {
        crate::store::facts::store_balances(tx, facts).await
    }
}

impl Fact for Transaction {
    fn key(&self) -> (&str, Option<time::Date>) {
        (&self.transaction_id, None)
    }
    fn product_code(&self) -> &str {
        &self.product_code
    }
    async fn store(tx: &mut sqlx::PgConnection, facts: &[&Self]) -> crate::error::Result<Stored> {
        crate::store::facts::store_transactions(tx, facts).await
    }
}

/// A stream so far: the facts waiting for the next batch and the answer.
struct Load<F> {
    batch: Vec<(i64, F)>,
    response: pb::FactsReport,
    /// Where a product-code violation goes (`snapshot.product_code`).
    product_field: &'static str,
}

impl<F: Fact> Load<F> {
    fn new(product_field: &'static str) -> Self {
        Self { batch: Vec::new(), response: pb::FactsReport::default(), product_field }
    }

    fn reject(&mut self, index: i64, violations: &FieldViolations) {
        self.response.rejections.push(pb::FactRejection { index, violations: violations.to_wire() });
    }

    /// Stores the batch with `store`: facts naming a product outside the catalogue are
    /// refused; of two facts with one key, the later in the stream wins.
    async fn flush(&mut self, api: &AnalyticsApi) -> Result<(), Error> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let mut tx = api.pool.begin().await?;
        let codes: Vec<&str> = batch.iter().map(|(_, f)| f.product_code()).collect();
        let known = crate::store::catalogue::known_products(&mut tx, &codes).await?;
        let mut latest: HashMap<(&str, Option<time::Date>), usize> = HashMap::new();
        let mut superseded = 0;
        for (position, (index, fact)) in batch.iter().enumerate() {
            if !known.iter().any(|k| k == fact.product_code()) {
                let mut v = FieldViolations::new();
                v.add(self.product_field, format!("{:?} is not in the product catalogue", fact.product_code()));
                self.reject(*index, &v);
            } else if latest.insert(fact.key(), position).is_some() {
                superseded += 1;
            }
        }
        let mut positions: Vec<usize> = latest.into_values().collect();
        positions.sort_unstable();
        let facts: Vec<&F> = positions.iter().map(|&p| &batch[p].1).collect();
        let stored = F::store(&mut tx, &facts).await?;
        crate::store::revaluation::mark_due(&mut tx, &stored.touched).await?;
        tx.commit().await?;
        self.response.accepted_count += stored.accepted + superseded;
        self.response.unchanged_count += stored.unchanged;
        self.response.pending_count += stored.pending;
        Ok(())
    }

    fn finish(mut self) -> pb::FactsReport {
        self.response.rejections.sort_by_key(|r| r.index);
        self.response
    }
}

/// Reads a whole fact stream: each message parsed by `parse` (a refusal reported by
/// its index), batches flushed as they fill; more than the configured maximum ends the
/// call with INVALID_ARGUMENT on `field` (batches already stored stay stored).
async fn load<M, F>(
    api: &AnalyticsApi,
    mut stream: Streaming<M>,
    field: &'static str,
    product_field: &'static str,
    parse: impl Fn(&M) -> Result<F, FieldViolations>,
) -> Result<pb::FactsReport, Status>
where
    F: Fact,
{
    let mut load = Load::new(product_field);
    let mut index = 0i64;
    while let Some(message) = stream.next().await {
        let message = message?;
        if index as usize >= api.settings.max_stream_facts {
            let mut v = FieldViolations::new();
            v.add(field, format!("a stream carries at most {} facts", api.settings.max_stream_facts));
            return Err(Error::Invalid(v).into());
        }
        match parse(&message) {
            Ok(fact) => load.batch.push((index, fact)),
            Err(v) => load.reject(index, &v),
        }
        index += 1;
        if load.batch.len() >= api.settings.facts_per_transaction {
            load.flush(api).await?;
        }
    }
    load.flush(api).await?;
    Ok(load.finish())
}

/// `LoadBalances`.
pub async fn load_balances(
    api: &AnalyticsApi,
    request: Request<Streaming<pb::LoadBalancesRequest>>,
) -> Result<Response<pb::LoadBalancesResponse>, Status> {
    let report = load(api, request.into_inner(), "snapshot", "snapshot.product_code", convert::balance).await?;
    Ok(Response::new(pb::LoadBalancesResponse { report: Some(report) }))
}

/// `RecordTransactions`.
pub async fn record_transactions(
    api: &AnalyticsApi,
    request: Request<Streaming<pb::RecordTransactionsRequest>>,
) -> Result<Response<pb::RecordTransactionsResponse>, Status> {
    let report = load(
        api,
        request.into_inner(),
        "transaction",
        "transaction.product_code",
        |m: &pb::RecordTransactionsRequest| convert::transaction(m.transaction.as_ref(), "transaction."),
    )
    .await?;
    Ok(Response::new(pb::RecordTransactionsResponse { report: Some(report) }))
}
