//! Identity's entries in the kit's audit trail (`crm_kit.audit_entry`): one per change,
//! login and token decision, written in the transaction of what it records; read
//! newest first through the kit's reader.

use crm_platform::audit::{self as trail, Filter, StoredEntry};
use crm_platform::paging::Page;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

pub use crm_platform::context::CallContext;

use crate::error::Result;

/// Appends one entry for `action` by `actor` on `target` inside `tx`.
pub async fn audit(
    tx: &mut PgConnection,
    actor: &CallContext,
    action: &str,
    target: Option<&str>,
    details: Value,
) -> Result<()> {
    trail::record_in(tx, &[actor.audit(action, target, details)]).await?;
    Ok(())
}

/// One page of the trail, newest first, filtered.
pub async fn list_audit(pool: &PgPool, filter: &Filter, page: &Page) -> Result<Vec<StoredEntry>> {
    Ok(trail::read(pool, filter, page).await?)
}
