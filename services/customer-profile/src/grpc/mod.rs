//! `crm.customer.v1.CustomerService`.
//!
//! One file per RPC family, in the order the proto declares them; the trait impl below
//! only hands each RPC to its family. A handler parses the request (wire values become
//! domain types in [`crate::convert`]), authorizes it against the caller's data scope
//! (the permission each RPC needs was checked before, by [`crate::access::POLICY`]),
//! calls the store and maps the answer back. Reads and changes of a customer are
//! recorded in the access audit trail.
//!
//! - [`ingestion`]: UpsertSourceRecord, ImportSourceRecords.
//! - [`read`]: GetCustomer, SearchCustomers, ListCustomerHistory.
//! - [`stewardship`]: ListSuspectPairs, ResolveSuspectPair.
//! - [`assignment`]: AssignCustomers, RecallCustomers, ListAssignmentHistory.
//! - [`relationships`]: AddRelationship, between two customers.
//! - [`view360`]: GetCustomer360, everything about one customer.
//! - [`audit`]: ListAccessAudit, the access audit trail.
//! - [`details`]: PutPartyDetail, RemovePartyDetail, SetExtendedAttributes, and how a
//!   maintained detail's PII is sealed for storage and revealed for a response.
//!
//! Shared here: the service and its writers, the caller of a request ([`Viewer`]) and
//! the data-scope checks every family uses.

use std::sync::Arc;

use crm_platform::FieldViolations;
use crm_platform::audit::AuditWriter;
use crm_platform::context::CallContext;
use crm_platform::runtime::ServiceRuntime;
use crm_proto::crm::customer::v1 as pb;
use serde_json::Value;
use sqlx::PgPool;
use tonic::{Request, Response, Status, Streaming};

mod assignment;
mod audit;
mod details;
mod ingestion;
mod read;
mod relationships;
mod stewardship;
mod view360;

use crate::access;
use crate::convert::Reveal;
use crate::domain::{Date, TrustTable, ValidatedRecord};
use crate::error::Error;
use crate::pii::PiiCipher;
use crate::store::{self, StoredCustomer};

/// Today's date, for birth-date checks (the path callers used before
/// [`crate::convert`] held it).
pub use crate::convert::today;

/// The `record` of an upsert request checked as of `today` (handlers check as of the
/// current date, through `ValidatedRecord::try_from`), or every problem with it named
/// by its request field (`record`, `record.key.source_system`, …). For tests that need
/// a fixed date and for callers of this path from before [`crate::convert`].
pub fn validate_record(record: Option<pb::SourceRecord>, today: Date) -> Result<ValidatedRecord, FieldViolations> {
    ingestion::request_record(record, |r| crate::convert::source_record(r, today))
}

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct CustomerApi {
    pool: PgPool,
    trust: Arc<TrustTable>,
    pii: Arc<PiiCipher>,
    /// Single upserts of concurrent calls, applied together (group commit).
    upserts: store::UpsertWriter,
    /// Audit entries of concurrent calls, written together.
    audits: AuditWriter,
    /// analytics, for the 360° view's value card.
    value_cards: crate::value_card::ValueCards,
}

impl CustomerApi {
    /// A service over the database in `pool` with the configured source trust and PII key.
    pub fn new(
        runtime: &mut ServiceRuntime,
        trust: TrustTable,
        pii: PiiCipher,
        value_cards: crate::value_card::ValueCards,
    ) -> Self {
        let pool = runtime.pool.clone();
        let (trust, pii) = (Arc::new(trust), Arc::new(pii));
        let (upserts, writer) = store::UpsertWriter::new(pool.clone(), trust.clone(), pii.clone());
        runtime.task("upsert writer", writer);
        let (audits, writer) = AuditWriter::new(pool.clone());
        runtime.task("audit writer", writer);
        Self { pool, trust, pii, upserts, audits, value_cards }
    }

    /// Stored PII as `viewer` may see it.
    fn reveal(&self, viewer: &Viewer) -> Reveal<'_> {
        Reveal { pii: &self.pii, full: viewer.full_pii }
    }

    /// Refuses a customer outside the viewer's data scope. Give the surviving number.
    async fn ensure_visible(&self, viewer: &Viewer, customer_number: &str) -> Result<(), Error> {
        match store::customer_visible(&self.pool, customer_number, &viewer.visibility).await? {
            Some(true) => Ok(()),
            Some(false) => Err(Error::OutOfScope(format!("customer {customer_number}"))),
            None => Err(Error::NotFound(format!("customer {customer_number}"))),
        }
    }

    /// Resolves a (possibly absorbed) customer number to its survivor and refuses it
    /// when outside the viewer's data scope.
    async fn visible_survivor(&self, viewer: &Viewer, customer_number: &str) -> Result<StoredCustomer, Error> {
        let customer = store::customer_by_number(&self.pool, customer_number).await?;
        self.ensure_visible(viewer, &customer.customer_number).await?;
        Ok(customer)
    }

    /// Writes audit entries; a read or change that cannot be audited fails.
    async fn audit(&self, entries: &[store::AuditEntry]) -> Result<(), Error> {
        self.audits.write(entries.to_vec()).await.map_err(|e| match e {
            crm_platform::audit::WriteError::Database(e) => Error::Database(e),
            stopped @ crm_platform::audit::WriteError::Stopped(_) => Error::Unavailable(stopped.to_string()),
        })
    }
}

/// The verified caller of a request: what they may see, and how they are recorded in
/// events and the access audit trail.
#[derive(Debug, Clone)]
struct Viewer {
    context: CallContext,
    visibility: store::Visibility,
    full_pii: bool,
}

fn viewer<T>(request: &Request<T>) -> Result<Viewer, Status> {
    let context = CallContext::authenticated(request)?;
    let caller = context.caller().ok_or_else(|| Status::unauthenticated("a bearer token is required"))?;
    Ok(Viewer { visibility: access::visibility(caller), full_pii: access::can_see_pii(caller), context })
}

impl Viewer {
    /// The actor recorded in history and events.
    fn actor(&self) -> Option<&str> {
        self.context.event_actor()
    }

    /// An audit entry for `action` on `customer_number`.
    fn audit(&self, action: &str, customer_number: Option<&str>, details: Value) -> store::AuditEntry {
        self.context.audit(action, customer_number, details)
    }
}

/// Every RPC, in proto order, handed to its family.
#[tonic::async_trait]
impl pb::customer_service_server::CustomerService for CustomerApi {
    async fn upsert_source_record(
        &self,
        request: Request<pb::UpsertSourceRecordRequest>,
    ) -> Result<Response<pb::UpsertSourceRecordResponse>, Status> {
        ingestion::upsert_source_record(self, request).await
    }

    async fn import_source_records(
        &self,
        request: Request<Streaming<pb::ImportSourceRecordsRequest>>,
    ) -> Result<Response<pb::ImportSourceRecordsResponse>, Status> {
        ingestion::import_source_records(self, request).await
    }

    async fn get_customer(
        &self,
        request: Request<pb::GetCustomerRequest>,
    ) -> Result<Response<pb::GetCustomerResponse>, Status> {
        crate::limits::get_customer(request.get_ref()).map_err(Error::Invalid)?;
        read::get_customer(self, request).await
    }

    async fn list_suspect_pairs(
        &self,
        request: Request<pb::ListSuspectPairsRequest>,
    ) -> Result<Response<pb::ListSuspectPairsResponse>, Status> {
        crate::limits::list_suspect_pairs(request.get_ref()).map_err(Error::Invalid)?;
        stewardship::list_suspect_pairs(self, request).await
    }

    async fn resolve_suspect_pair(
        &self,
        request: Request<pb::ResolveSuspectPairRequest>,
    ) -> Result<Response<pb::ResolveSuspectPairResponse>, Status> {
        crate::limits::resolve_suspect_pair(request.get_ref()).map_err(Error::Invalid)?;
        stewardship::resolve_suspect_pair(self, request).await
    }

    async fn search_customers(
        &self,
        request: Request<pb::SearchCustomersRequest>,
    ) -> Result<Response<pb::SearchCustomersResponse>, Status> {
        crate::limits::search_customers(request.get_ref()).map_err(Error::Invalid)?;
        read::search_customers(self, request).await
    }

    async fn assign_customers(
        &self,
        request: Request<pb::AssignCustomersRequest>,
    ) -> Result<Response<pb::AssignCustomersResponse>, Status> {
        crate::limits::assign_customers(request.get_ref()).map_err(Error::Invalid)?;
        assignment::assign_customers(self, request).await
    }

    async fn recall_customers(
        &self,
        request: Request<pb::RecallCustomersRequest>,
    ) -> Result<Response<pb::RecallCustomersResponse>, Status> {
        crate::limits::recall_customers(request.get_ref()).map_err(Error::Invalid)?;
        assignment::recall_customers(self, request).await
    }

    async fn list_assignment_history(
        &self,
        request: Request<pb::ListAssignmentHistoryRequest>,
    ) -> Result<Response<pb::ListAssignmentHistoryResponse>, Status> {
        crate::limits::list_assignment_history(request.get_ref()).map_err(Error::Invalid)?;
        assignment::list_assignment_history(self, request).await
    }

    async fn list_customer_history(
        &self,
        request: Request<pb::ListCustomerHistoryRequest>,
    ) -> Result<Response<pb::ListCustomerHistoryResponse>, Status> {
        crate::limits::list_customer_history(request.get_ref()).map_err(Error::Invalid)?;
        read::list_customer_history(self, request).await
    }

    async fn add_relationship(
        &self,
        request: Request<pb::AddRelationshipRequest>,
    ) -> Result<Response<pb::AddRelationshipResponse>, Status> {
        crate::limits::add_relationship(request.get_ref()).map_err(Error::Invalid)?;
        relationships::add_relationship(self, request).await
    }

    async fn get_customer360(
        &self,
        request: Request<pb::GetCustomer360Request>,
    ) -> Result<Response<pb::GetCustomer360Response>, Status> {
        crate::limits::get_customer360(request.get_ref()).map_err(Error::Invalid)?;
        view360::get_customer360(self, request).await
    }

    async fn list_access_audit(
        &self,
        request: Request<pb::ListAccessAuditRequest>,
    ) -> Result<Response<pb::ListAccessAuditResponse>, Status> {
        crate::limits::list_access_audit(request.get_ref()).map_err(Error::Invalid)?;
        audit::list_access_audit(self, request).await
    }

    async fn put_party_detail(
        &self,
        request: Request<pb::PutPartyDetailRequest>,
    ) -> Result<Response<pb::PutPartyDetailResponse>, Status> {
        crate::limits::put_party_detail(request.get_ref()).map_err(Error::Invalid)?;
        details::put_party_detail(self, request).await
    }

    async fn remove_party_detail(
        &self,
        request: Request<pb::RemovePartyDetailRequest>,
    ) -> Result<Response<pb::RemovePartyDetailResponse>, Status> {
        crate::limits::remove_party_detail(request.get_ref()).map_err(Error::Invalid)?;
        details::remove_party_detail(self, request).await
    }

    async fn set_extended_attributes(
        &self,
        request: Request<pb::SetExtendedAttributesRequest>,
    ) -> Result<Response<pb::SetExtendedAttributesResponse>, Status> {
        crate::limits::set_extended_attributes(request.get_ref()).map_err(Error::Invalid)?;
        details::set_extended_attributes(self, request).await
    }
}
