//! Revocations: identity announces `PrincipalRevoked`; every service records it in its
//! own database (one replica applies each event, through the inbox) and every replica
//! reloads the list into its verifier at a short interval.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crm_proto::crm::identity::v1::PrincipalRevoked;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use super::verifier::Verifier;
use crate::messaging::{EventHandler, HandlerError, IncomingEvent};

/// Records that `subject`'s tokens issued before `not_before` are refused; keeps the
/// latest instant when called again. Identity calls it in the transaction that
/// disables the user; other services through [`RevocationHandler`].
pub async fn record(
    tx: &mut PgConnection,
    subject: &str,
    not_before: time::OffsetDateTime,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO crm_kit.revoked_principal (subject, not_before, reason) VALUES ($1, $2, $3)
         ON CONFLICT (subject) DO UPDATE
           SET not_before = greatest(crm_kit.revoked_principal.not_before, excluded.not_before),
               reason = excluded.reason, recorded_at = now()",
    )
    .bind(subject)
    .bind(not_before)
    .bind(reason)
    .execute(tx)
    .await?;
    Ok(())
}

/// Revocations recent enough to matter: older ones only concern expired tokens.
pub async fn load(pool: &PgPool, max_token_ttl: Duration) -> Result<HashMap<String, i64>, sqlx::Error> {
    let horizon = time::OffsetDateTime::now_utc() - max_token_ttl;
    let rows: Vec<(String, time::OffsetDateTime)> =
        sqlx::query_as("SELECT subject, not_before FROM crm_kit.revoked_principal WHERE not_before > $1")
            .bind(horizon)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(|(s, t)| (s, t.unix_timestamp())).collect())
}

/// Applies `crm.identity.v1.PrincipalRevoked` events to the service's database.
#[derive(Debug, Clone, Default)]
pub struct RevocationHandler;

impl EventHandler for RevocationHandler {
    async fn handle(&self, event: &IncomingEvent, tx: &mut PgConnection) -> Result<(), HandlerError> {
        let revoked: PrincipalRevoked = event.decode()?;
        let not_before = revoked
            .not_before
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t.seconds).ok())
            .ok_or_else(|| HandlerError::Permanent("PrincipalRevoked without not_before".into()))?;
        if revoked.subject.is_empty() {
            return Err(HandlerError::Permanent("PrincipalRevoked without subject".into()));
        }
        record(tx, &revoked.subject, not_before, &revoked.reason).await?;
        Ok(())
    }
}

/// Keeps `verifier`'s revocation list equal to the database's until `cancel` fires.
pub async fn keep_current(
    pool: PgPool,
    verifier: Arc<Verifier>,
    every: Duration,
    max_token_ttl: Duration,
    cancel: CancellationToken,
) {
    loop {
        match load(&pool, max_token_ttl).await {
            Ok(list) => verifier.set_revocations(list),
            Err(error) => tracing::warn!(%error, "revocations could not be reloaded; keeping the last list"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
