//! Ingestion: source systems push their records in, one at a time (applied together
//! with concurrent calls, a group commit) or as a stream applied in batches. A refused
//! record stores nothing; an accepted one commits with its audit entry.

use crm_platform::FieldViolations;
use crm_proto::crm::customer::v1 as pb;
use futures::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::{CustomerApi, Viewer, viewer};
use crate::domain::ValidatedRecord;
use crate::error::Error;
use crate::store;

/// Records of an import stream applied per transaction.
const IMPORT_BATCH: usize = 1000;

/// The `record` field of a request, checked by `check`; its problems are named by
/// request field (`record`, `record.key.source_system`, …).
pub(super) fn request_record(
    record: Option<pb::SourceRecord>,
    check: impl FnOnce(pb::SourceRecord) -> Result<ValidatedRecord, FieldViolations>,
) -> Result<ValidatedRecord, FieldViolations> {
    let Some(record) = record else {
        let mut v = FieldViolations::new();
        v.add("record", "is required");
        return Err(v);
    };
    check(record).map_err(|v| v.nested("record"))
}

pub(super) async fn upsert_source_record(
    api: &CustomerApi,
    request: Request<pb::UpsertSourceRecordRequest>,
) -> Result<Response<pb::UpsertSourceRecordResponse>, Status> {
    let viewer = viewer(&request)?;
    let validated = request_record(request.into_inner().record, ValidatedRecord::try_from).map_err(Error::Invalid)?;
    // The audit entry commits with the change (customer number and outcome are
    // filled in by the writer once known).
    let audit = upsert_audit(&viewer, &validated);
    let result =
        api.upserts.upsert(store::PreparedRecord::new(&api.pii, validated), viewer.actor(), Some(audit)).await?;
    tracing::info!(customer_number = %result.customer_number, outcome = ?result.outcome, "source record upserted");
    Ok(Response::new(result.into()))
}

pub(super) async fn import_source_records(
    api: &CustomerApi,
    request: Request<Streaming<pb::ImportSourceRecordsRequest>>,
) -> Result<Response<pb::ImportSourceRecordsResponse>, Status> {
    let viewer = viewer(&request)?;
    let mut stream = request.into_inner();
    let mut import = Import::default();
    while let Some(message) = stream.next().await {
        let message = message?;
        crate::limits::import_record(import.outcomes.len() as i64).map_err(Error::Invalid)?;
        let key = crate::limits::echoed_key(&message);
        match request_record(message.record, ValidatedRecord::try_from) {
            Ok(validated) => import.accept(key, store::PreparedRecord::new(&api.pii, validated)),
            Err(violations) => import.reject(key, &violations),
        }
        if import.pending.len() >= IMPORT_BATCH {
            import.apply(api, &viewer).await?;
        }
    }
    import.apply(api, &viewer).await?;
    let response = import.finish();
    tracing::info!(accepted = response.accepted_count, rejected = response.rejected_count, "import finished");
    Ok(Response::new(response))
}

/// An import stream so far. Records are applied in batches, one transaction each;
/// outcomes keep stream order.
#[derive(Default)]
struct Import {
    response: pb::ImportSourceRecordsResponse,
    /// One per record received, by stream index; `None` while its batch is pending.
    outcomes: Vec<Option<pb::ImportOutcome>>,
    /// Accepted records waiting for the next batch, and their stream indexes and keys.
    pending: Vec<store::PreparedRecord>,
    keys: Vec<(i64, Option<pb::SourceKey>)>,
}

impl Import {
    fn reject(&mut self, key: Option<pb::SourceKey>, violations: &FieldViolations) {
        self.response.rejected_count += 1;
        self.outcomes.push(Some(pb::ImportOutcome {
            index: self.outcomes.len() as i64,
            key,
            outcome: pb::UpsertOutcome::Rejected as i32,
            violations: violations.to_wire(),
            ..Default::default()
        }));
    }

    fn accept(&mut self, key: Option<pb::SourceKey>, record: store::PreparedRecord) {
        self.keys.push((self.outcomes.len() as i64, key));
        self.outcomes.push(None);
        self.pending.push(record);
    }

    /// Stores the pending records in one batch and fills in their outcomes.
    async fn apply(&mut self, api: &CustomerApi, viewer: &Viewer) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.pending);
        let audits: Vec<_> = records.iter().map(|r| Some(upsert_audit(viewer, &r.validated))).collect();
        let results = store::upsert_batch(&api.pool, &api.trust, &api.pii, &records, viewer.actor(), &audits).await?;
        for ((i, key), r) in self.keys.drain(..).zip(results) {
            self.response.accepted_count += 1;
            self.outcomes[i as usize] = Some(pb::ImportOutcome {
                index: i,
                key,
                outcome: pb::UpsertOutcome::from(r.outcome) as i32,
                customer_number: r.customer_number,
                quality_flags: r.quality_flags,
                violations: vec![],
            });
        }
        Ok(())
    }

    fn finish(mut self) -> pb::ImportSourceRecordsResponse {
        self.response.outcomes = self.outcomes.into_iter().flatten().collect();
        self.response
    }
}

/// The audit entry of an accepted source record; the writer fills in the customer
/// number and the outcome, and stores it in the record's transaction.
fn upsert_audit(viewer: &Viewer, record: &ValidatedRecord) -> store::AuditEntry {
    viewer.audit(
        "customer.upsert_source_record",
        None,
        serde_json::json!({
            "source_system": record.record.source_system,
            "source_customer_id": record.record.source_customer_id,
        }),
    )
}
