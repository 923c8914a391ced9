//! Ed25519 signing keys (`signing_key`): exactly one current key signs; retired keys
//! stay published for verification while tokens they signed may be unexpired. Seeds
//! are stored encrypted (`crate::secrets::SeedCipher`); this module never decrypts.

use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;

use super::{CallContext, audit, system};
use crate::error::Result;

/// A signing key as stored, seed still encrypted.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredKey {
    /// Key id.
    pub kid: String,
    /// Encrypted seed.
    pub seed_encrypted: String,
    /// Public key.
    pub public_key: Vec<u8>,
    /// When it stopped signing.
    pub retired_at: Option<OffsetDateTime>,
}

/// A key as published for verification: no seed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PublishedKey {
    /// Key id.
    pub kid: String,
    /// Ed25519 public key, 32 bytes.
    pub public_key: Vec<u8>,
    /// When it stopped signing; `None` for the current key.
    pub retired_at: Option<OffsetDateTime>,
}

/// The current signing key, if any.
pub async fn current_key(pool: &PgPool) -> Result<Option<StoredKey>> {
    Ok(sqlx::query_as::<_, StoredKey>(
        "SELECT kid, seed_encrypted, public_key, retired_at FROM signing_key WHERE retired_at IS NULL",
    )
    .fetch_optional(pool)
    .await?)
}

/// Retires the current key (if any) and makes `key` current. With `first_only`, does
/// nothing when a current key exists (replicas starting together create one key);
/// answers whether `key` became current.
pub async fn rotate_key(pool: &PgPool, actor: Option<&CallContext>, key: &StoredKey, first_only: bool) -> Result<bool> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('identity.signing_key'))").execute(&mut *tx).await?;
    if first_only {
        let current: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM signing_key WHERE retired_at IS NULL)")
            .fetch_one(&mut *tx)
            .await?;
        if current {
            return Ok(false);
        }
    }
    let retired: Option<String> =
        sqlx::query_scalar("UPDATE signing_key SET retired_at = now() WHERE retired_at IS NULL RETURNING kid")
            .fetch_optional(&mut *tx)
            .await?;
    sqlx::query("INSERT INTO signing_key (kid, seed_encrypted, public_key) VALUES ($1, $2, $3)")
        .bind(&key.kid)
        .bind(&key.seed_encrypted)
        .bind(&key.public_key)
        .execute(&mut *tx)
        .await?;
    let system = system();
    audit(&mut tx, actor.unwrap_or(&system), "signing_key.rotated", Some(&key.kid), json!({"retired": retired}))
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// Keys whose tokens may still be unexpired: current, and retired within `horizon`;
/// newest first.
pub async fn verification_keys(pool: &PgPool, horizon: time::Duration) -> Result<Vec<PublishedKey>> {
    let since = OffsetDateTime::now_utc() - horizon;
    Ok(sqlx::query_as::<_, PublishedKey>(
        "SELECT kid, public_key, retired_at FROM signing_key WHERE retired_at IS NULL OR retired_at > $1
         ORDER BY created_at DESC",
    )
    .bind(since)
    .fetch_all(pool)
    .await?)
}
