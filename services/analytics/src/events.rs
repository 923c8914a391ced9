//! Events this service publishes and consumes.
//!
//! Published (written to the outbox by [`crate::store`] in the transaction of the
//! change): `crm.analytics.v1.LevelChanged` and
//! `crm.analytics.v1.SegmentMembershipChanged` (a customer entered or left a segment),
//! subject the customer number.
//!
//! Consumed:
//! - `crm.customer.v1.CustomerCreated` / `CustomerUpdated` / `SourceRecordLinked` (their
//!   source record is the customer's; the first two carry the demographic attributes),
//!   `CustomerMerged`, `CustomerUnmerged` → the copy of customer-profile's
//!   identification; facts move with their customers and waiting facts count;
//!   CustomerCreated's time is when the customer was created (new customers, for
//!   business targets).
//! - `crm.customer.v1.CustomerAssigned`, `crm.identity.v1.OrgChanged` → the copies data
//!   scopes filter by.
//! - `crm.analytics.v1.TransactionPosted` → transactions from core banking, kept by
//!   transaction id (a redelivery changes nothing).

use crm_platform::messaging::{EventHandler, HandlerError, IncomingEvent};
use crm_proto::crm::analytics::v1 as pb;
use crm_proto::crm::customer::v1 as customer;
use sqlx::PgConnection;

use crate::error::Error;
use crate::{convert, store};

/// Routing keys of customer-profile's identification events.
pub const CUSTOMER_EVENTS: [&str; 5] = [
    "crm.customer.v1.CustomerCreated",
    "crm.customer.v1.CustomerUpdated",
    "crm.customer.v1.SourceRecordLinked",
    "crm.customer.v1.CustomerMerged",
    "crm.customer.v1.CustomerUnmerged",
];

/// Routing keys of what data scopes filter by: assignments and the org tree.
pub const SCOPE_EVENTS: [&str; 2] = ["crm.customer.v1.CustomerAssigned", "crm.identity.v1.OrgChanged"];

/// Routing key of core banking's transactions.
pub const TRANSACTION_POSTED: &str = "crm.analytics.v1.TransactionPosted";

fn handler_error(e: Error) -> HandlerError {
    match e {
        Error::Database(e) => HandlerError::Database(e),
        Error::Invalid(v) => HandlerError::Permanent(v.to_string()),
        other => HandlerError::Permanent(other.to_string()),
    }
}

/// Keeps the copy of customer-profile's identification and recomputes the customers
/// whose facts moved.
#[derive(Debug, Clone, Default)]
pub struct CustomerHandler;

impl EventHandler for CustomerHandler {
    async fn handle(&self, event: &IncomingEvent, tx: &mut PgConnection) -> Result<(), HandlerError> {
        let touched = match event.event_type.as_str() {
            "crm.customer.v1.CustomerCreated" => {
                let e: customer::CustomerCreated = event.decode()?;
                let touched =
                    described(tx, event, &e.customer_number, e.source.as_ref(), e.demographics.as_ref()).await;
                if let Some(at) = event.time {
                    store::customers::created(tx, &e.customer_number, at).await.map_err(handler_error)?;
                }
                touched
            }
            "crm.customer.v1.CustomerUpdated" => {
                let e: customer::CustomerUpdated = event.decode()?;
                described(tx, event, &e.customer_number, e.source.as_ref(), e.demographics.as_ref()).await
            }
            "crm.customer.v1.SourceRecordLinked" => {
                let e: customer::SourceRecordLinked = event.decode()?;
                linked(tx, &e.customer_number, e.source.as_ref()).await
            }
            "crm.customer.v1.CustomerMerged" => {
                let e: customer::CustomerMerged = event.decode()?;
                store::customers::merged(tx, &e.surviving_customer_number, &e.absorbed_customer_numbers).await
            }
            "crm.customer.v1.CustomerUnmerged" => {
                let e: customer::CustomerUnmerged = event.decode()?;
                let Some(key) = e.source else {
                    return Err(HandlerError::Permanent("CustomerUnmerged without its source record".into()));
                };
                store::customers::unmerged(
                    tx,
                    &e.customer_number,
                    &e.new_customer_number,
                    &key.source_system,
                    &key.source_customer_id,
                )
                .await
            }
            other => return Err(HandlerError::Permanent(format!("not an identification event: {other}"))),
        }
        .map_err(handler_error)?;
        store::revaluation::mark_due(tx, &touched).await.map_err(handler_error)?;
        Ok(())
    }
}

/// [`linked`], and the demographic attributes the event carries (if any).
async fn described(
    tx: &mut PgConnection,
    event: &IncomingEvent,
    number: &str,
    source: Option<&customer::SourceKey>,
    demographics: Option<&customer::CustomerDemographics>,
) -> Result<store::customers::Touched, Error> {
    let mut touched = linked(tx, number, source).await?;
    if let Some(d) = demographics {
        let at = event.time.unwrap_or_else(time::OffsetDateTime::now_utc);
        touched.extend(store::customers::demographics(tx, number, &convert::demographics(d), at).await?);
    }
    Ok(touched)
}

/// Keeps the copies of assignments and of the org tree that data scopes filter by.
#[derive(Debug, Clone, Default)]
pub struct ScopeHandler;

impl EventHandler for ScopeHandler {
    async fn handle(&self, event: &IncomingEvent, tx: &mut PgConnection) -> Result<(), HandlerError> {
        match event.event_type.as_str() {
            "crm.customer.v1.CustomerAssigned" => {
                let e: customer::CustomerAssigned = event.decode()?;
                let a = e
                    .assignment
                    .ok_or_else(|| HandlerError::Permanent("CustomerAssigned without assignment".into()))?;
                let at = a
                    .update_time
                    .as_ref()
                    .and_then(crm_platform::convert::time_of)
                    .or(event.time)
                    .unwrap_or_else(time::OffsetDateTime::now_utc);
                store::scope::assigned(tx, &a.customer_number, &a.home_org_id, &a.primary_rm_id, &a.related_rm_ids, at)
                    .await
            }
            "crm.identity.v1.OrgChanged" => {
                let e: crm_proto::crm::identity::v1::OrgChanged = event.decode()?;
                let org = e.org.ok_or_else(|| HandlerError::Permanent("OrgChanged without org".into()))?;
                if org.org_id.is_empty() || !org.path.starts_with('/') || !org.path.ends_with('/') {
                    return Err(HandlerError::Permanent(format!("OrgChanged with an unusable org: {:?}", org.org_id)));
                }
                store::scope::org_changed(tx, &org.org_id, &org.path, org.closed).await
            }
            other => return Err(HandlerError::Permanent(format!("not a scope event: {other}"))),
        }
        .map_err(handler_error)
    }
}

/// Customer `number` holds source record `key` (when the event names one).
async fn linked(
    tx: &mut PgConnection,
    number: &str,
    key: Option<&customer::SourceKey>,
) -> crate::error::Result<store::customers::Touched> {
    let key = key.map(|k| (k.source_system.as_str(), k.source_customer_id.as_str()));
    store::customers::source_linked(tx, number, key).await
}

/// Stores transactions core banking publishes.
#[derive(Debug, Clone, Default)]
pub struct TransactionPostedHandler;

impl EventHandler for TransactionPostedHandler {
    async fn handle(&self, event: &IncomingEvent, tx: &mut PgConnection) -> Result<(), HandlerError> {
        let posted: pb::TransactionPosted = event.decode()?;
        let transaction = crate::convert::transaction(posted.transaction.as_ref(), "transaction.")
            .map_err(|v| HandlerError::Permanent(format!("unusable transaction: {v}")))?;
        let known =
            store::catalogue::known_products(tx, &[transaction.product_code.as_str()]).await.map_err(handler_error)?;
        if known.is_empty() {
            return Err(HandlerError::Permanent(format!(
                "transaction {}: product {:?} is not in the catalogue",
                transaction.transaction_id, transaction.product_code
            )));
        }
        let stored = store::facts::store_transactions(tx, &[&transaction]).await.map_err(handler_error)?;
        store::revaluation::mark_due(tx, &stored.touched).await.map_err(handler_error)?;
        Ok(())
    }
}
