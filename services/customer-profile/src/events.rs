//! Events this service consumes. (Its own events are written by [`crate::store`]
//! through the outbox in the transactions that change customers.)
//!
//! - `crm.identity.v1.OrgChanged` → the org directory that subtree data scopes use.

use crm_platform::messaging::{EventHandler, HandlerError, IncomingEvent};
use crm_proto::crm::identity::v1::OrgChanged;
use sqlx::PgConnection;

/// Routing key of org changes.
pub const ORG_CHANGED: &str = "crm.identity.v1.OrgChanged";

/// Keeps the org directory equal to identity's org tree.
#[derive(Debug, Clone, Default)]
pub struct OrgDirectoryHandler;

impl EventHandler for OrgDirectoryHandler {
    async fn handle(&self, event: &IncomingEvent, tx: &mut PgConnection) -> Result<(), HandlerError> {
        let changed: OrgChanged = event.decode()?;
        let org = changed.org.ok_or_else(|| HandlerError::Permanent("OrgChanged without org".into()))?;
        if org.org_id.is_empty() || !org.path.starts_with('/') || !org.path.ends_with('/') {
            return Err(HandlerError::Permanent(format!("OrgChanged with an unusable org: {:?}", org.org_id)));
        }
        crate::store::upsert_org(tx, &org.org_id, &org.path, org.closed).await.map_err(|e| match e {
            crate::error::Error::Database(e) => HandlerError::Database(e),
            other => HandlerError::Transient(other.to_string()),
        })
    }
}
