//! Revoking a principal: every refresh token it holds, and every access token issued
//! to it until now. The access-token cut-off is recorded for this service's own
//! verifiers (the kit's `revocation` table) and announced to every other service with
//! `PrincipalRevoked`, in the transaction of the change that caused it.

use crm_platform::messaging::outbox;
use crm_proto::crm::identity::v1 as pb;
use serde_json::json;
use sqlx::PgConnection;
use time::OffsetDateTime;

use super::{CallContext, EVENT_SOURCE, audit, refresh_tokens};
use crate::error::Result;

/// Revokes every refresh token of `subject` and every access token issued until now:
/// recorded for this service's verifiers and announced to every other service.
pub(super) async fn revoke_principal(
    tx: &mut PgConnection,
    actor: &CallContext,
    subject: &str,
    reason: &str,
) -> Result<()> {
    // Token times are whole seconds: refusing tokens issued before the next second
    // also catches one issued earlier in this very second.
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or_else(|_| OffsetDateTime::now_utc())
        + time::Duration::seconds(1);
    let revoked = refresh_tokens::revoke_all_of(&mut *tx, subject).await?;
    crm_platform::auth::revocation::record(&mut *tx, subject, now, reason).await?;
    let event = pb::PrincipalRevoked {
        subject: subject.into(),
        not_before: Some(crm_platform::convert::timestamp(now)),
        reason: reason.into(),
    };
    outbox::write_event(&mut *tx, EVENT_SOURCE, subject, &event, actor.event_actor()).await?;
    audit(tx, actor, "token.revoked", Some(subject), json!({"reason": reason, "refresh_tokens": revoked})).await?;
    Ok(())
}
