//! Signing access tokens with the current key, and publishing verification keys.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use crm_platform::auth::{Claims, KeySource, SigningKey, VerificationKey};
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::secrets::SeedCipher;
use crate::store::{self, PrincipalClaims, PublishedKey, StoredKey};

/// Issues access tokens.
#[derive(Debug, Clone)]
pub struct TokenIssuer {
    pool: PgPool,
    cipher: SeedCipher,
    /// Access-token lifetime.
    pub access_ttl: time::Duration,
    issuer: String,
    audience: String,
    /// The current key, reloaded when another replica rotated.
    current: Arc<RwLock<Option<SigningKey>>>,
}

impl TokenIssuer {
    /// An issuer over the keys in `pool`.
    pub fn new(pool: PgPool, cipher: SeedCipher, access_ttl: time::Duration, issuer: String, audience: String) -> Self {
        Self { pool, cipher, access_ttl, issuer, audience, current: Arc::new(RwLock::new(None)) }
    }

    fn cached(&self) -> Option<SigningKey> {
        self.current.read().ok()?.clone()
    }

    /// The current signing key; the database decides which one it is, so that a
    /// rotation on one replica takes effect on all.
    async fn key(&self) -> Result<SigningKey> {
        let stored = store::current_key(&self.pool).await?.ok_or_else(|| Error::Secret("no signing key".into()))?;
        if let Some(key) = self.cached().filter(|k| k.kid() == stored.kid) {
            return Ok(key);
        }
        let key = SigningKey::from_seed(stored.kid.clone(), self.cipher.decrypt(&stored.kid, &stored.seed_encrypted)?);
        if let Ok(mut current) = self.current.write() {
            *current = Some(key.clone());
        }
        Ok(key)
    }

    /// Makes a fresh key current.
    pub async fn rotate(&self, actor: Option<&store::CallContext>) -> Result<String> {
        self.new_key(actor, false).await
    }

    /// A fresh key, current unless `first_only` and a current key exists.
    async fn new_key(&self, actor: Option<&store::CallContext>, first_only: bool) -> Result<String> {
        let now = OffsetDateTime::now_utc();
        let kid = format!("k-{}-{}", now.unix_timestamp(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let key = SigningKey::generate(kid.clone());
        let stored = StoredKey {
            kid: kid.clone(),
            seed_encrypted: self.cipher.encrypt(&kid, &key.seed())?,
            public_key: key.verification_key().public_key.to_vec(),
            retired_at: None,
        };
        store::rotate_key(&self.pool, actor, &stored, first_only).await?;
        Ok(kid)
    }

    /// Creates a first key when there is none; checks that the current key decrypts
    /// with the configured key-encryption key.
    pub async fn ensure_key(&self) -> Result<()> {
        if store::current_key(&self.pool).await?.is_none() {
            self.new_key(None, true).await?;
        }
        self.key().await.map(|_| ())
    }

    /// A new access token for `subject`; answers it with its id and expiry.
    pub async fn issue(&self, subject: &str, p: &PrincipalClaims, jti: &str) -> Result<(String, OffsetDateTime)> {
        let key = self.key().await?;
        let now = OffsetDateTime::now_utc();
        let exp = now + self.access_ttl;
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: subject.into(),
            aud: self.audience.clone(),
            iat: now.unix_timestamp(),
            exp: exp.unix_timestamp(),
            jti: jti.into(),
            kind: p.kind,
            name: p.login.clone(),
            org: p.org_id.clone(),
            org_path: p.org_path.clone(),
            roles: p.roles.clone(),
            perms: p.perms.clone(),
            scope: p.scope,
        };
        Ok((crm_platform::auth::sign(&claims, &key), exp))
    }
}

/// Verification keys straight from identity's own table (identity verifies its own
/// tokens without calling itself).
#[derive(Debug, Clone)]
pub struct StoreKeys {
    pool: PgPool,
    /// Retired keys stay published this long: the token lifetime plus clock leeway.
    horizon: time::Duration,
}

impl StoreKeys {
    /// Keys from `pool`, publishing retired ones for `horizon`.
    pub fn new(pool: PgPool, horizon: time::Duration) -> Self {
        Self { pool, horizon }
    }

    /// The published keys.
    pub async fn published(&self) -> Result<Vec<PublishedKey>> {
        store::verification_keys(&self.pool, self.horizon).await
    }
}

impl KeySource for StoreKeys {
    fn keys(&self) -> Pin<Box<dyn Future<Output = std::result::Result<Vec<VerificationKey>, String>> + Send + '_>> {
        Box::pin(async move {
            let keys = self.published().await.map_err(|e| e.to_string())?;
            Ok(keys.into_iter().filter_map(|k| VerificationKey::from_bytes(k.kid, &k.public_key)).collect())
        })
    }
}
