//! Refresh tokens (`refresh_token`), stored only as SHA-256 hashes. One login starts a
//! family; each use spends the token and stores its successor in the same family.
//! Presenting a spent token again revokes the whole family (it was copied), as does
//! logging out.

use serde_json::json;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::logins::{PrincipalClaims, principal_claims};
use super::{CallContext, audit};
use crate::error::Result;

/// What presenting a refresh token did.
#[derive(Debug)]
pub enum Refreshed {
    /// Rotated: the principal's claims for the new access token.
    Rotated(String, PrincipalClaims),
    /// Unknown, expired or revoked.
    Refused,
    /// Spent before: the family is now revoked.
    ReuseDetected(String),
}

/// A stored refresh token, as rotation reads it.
#[derive(Debug, sqlx::FromRow)]
struct RefreshRow {
    family_id: Uuid,
    subject: String,
    used_at: Option<OffsetDateTime>,
    revoked_at: Option<OffsetDateTime>,
    expires_at: OffsetDateTime,
}

/// Stores a fresh token of `family` for `subject` inside `tx`.
pub(super) async fn insert(
    tx: &mut PgConnection,
    hash: &str,
    family: Uuid,
    subject: &str,
    expires_at: OffsetDateTime,
) -> Result<()> {
    sqlx::query("INSERT INTO refresh_token (token_hash, family_id, subject, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(hash)
        .bind(family)
        .bind(subject)
        .bind(expires_at)
        .execute(tx)
        .await?;
    Ok(())
}

async fn revoke_family(tx: &mut PgConnection, family: Uuid) -> Result<()> {
    sqlx::query("UPDATE refresh_token SET revoked_at = coalesce(revoked_at, now()) WHERE family_id = $1")
        .bind(family)
        .execute(tx)
        .await?;
    Ok(())
}

/// Revokes every unrevoked refresh token of `subject` inside `tx`; answers how many.
pub(super) async fn revoke_all_of(tx: &mut PgConnection, subject: &str) -> Result<u64> {
    let revoked = sqlx::query("UPDATE refresh_token SET revoked_at = now() WHERE subject = $1 AND revoked_at IS NULL")
        .bind(subject)
        .execute(tx)
        .await?;
    Ok(revoked.rows_affected())
}

/// Spends `hash` and stores its successor `next` (same family), atomically.
pub async fn rotate_refresh(
    pool: &PgPool,
    actor: &CallContext,
    hash: &str,
    next: &str,
    next_expires: OffsetDateTime,
    jti: &str,
) -> Result<Refreshed> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query_as::<_, RefreshRow>(
        "SELECT family_id, subject, used_at, revoked_at, expires_at FROM refresh_token WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(RefreshRow { family_id: family, subject, used_at, revoked_at, expires_at }) = row else {
        return Ok(Refreshed::Refused);
    };
    let actor = actor.acting_as(subject.clone());
    if used_at.is_some() {
        revoke_family(&mut tx, family).await?;
        audit(&mut tx, &actor, "token.reuse_detected", Some(&subject), json!({"family": family})).await?;
        audit(&mut tx, &actor, "token.revoked", Some(&subject), json!({"family": family, "reason": "reuse detected"}))
            .await?;
        tx.commit().await?;
        return Ok(Refreshed::ReuseDetected(subject));
    }
    if revoked_at.is_some() || expires_at <= OffsetDateTime::now_utc() {
        return Ok(Refreshed::Refused);
    }
    let claims = principal_claims(&mut tx, &subject).await?;
    if claims.disabled {
        return Ok(Refreshed::Refused);
    }
    sqlx::query("UPDATE refresh_token SET used_at = now() WHERE token_hash = $1").bind(hash).execute(&mut *tx).await?;
    insert(&mut tx, next, family, &subject, next_expires).await?;
    audit(&mut tx, &actor, "token.issued", Some(&subject), json!({"jti": jti, "grant": "refresh_token"})).await?;
    tx.commit().await?;
    Ok(Refreshed::Rotated(subject, claims))
}

/// Revokes the family of a refresh token (logout). Unknown tokens are ignored.
pub async fn logout(pool: &PgPool, actor: &CallContext, hash: &str) -> Result<()> {
    let mut tx = pool.begin().await?;
    let row: Option<(Uuid, String)> =
        sqlx::query_as("SELECT family_id, subject FROM refresh_token WHERE token_hash = $1")
            .bind(hash)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some((family, subject)) = row {
        revoke_family(&mut tx, family).await?;
        let actor = actor.acting_as(subject.clone());
        audit(&mut tx, &actor, "token.revoked", Some(&subject), json!({"family": family, "reason": "logout"})).await?;
    }
    tx.commit().await?;
    Ok(())
}
