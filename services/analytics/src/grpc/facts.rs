//! The fact streams: balance snapshots and transactions. Messages are checked one by
//! one (a bad one is reported by its stream index and the rest load), stored in
//! batches of `facts_per_transaction`, each batch in one transaction with the
//! recompute of the customers it touched; a replayed stream changes nothing.

use crm_platform::FieldViolations;
use crm_proto::crm::analytics::v1 as pb;
use futures::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::AnalyticsApi;
use crate::convert;
use crate::error::Error;
use crate::store::facts::Fact;

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

    /// Stores the batch ([`crate::store::facts::ingest`]) in one transaction; a fact
    /// naming a product outside the catalogue is reported by its index.
    async fn flush(&mut self, api: &AnalyticsApi) -> Result<(), Error> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let mut tx = api.pool.begin().await?;
        let ingested = crate::store::facts::ingest(&mut tx, &batch).await?;
        tx.commit().await?;
        for (index, code) in &ingested.unknown_product {
            let mut v = FieldViolations::new();
            v.add(self.product_field, format!("{code:?} is not in the product catalogue"));
            self.reject(*index, &v);
        }
        self.response.accepted_count += ingested.accepted;
        self.response.unchanged_count += ingested.unchanged;
        self.response.pending_count += ingested.pending;
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
