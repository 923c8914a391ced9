//! Local token verification: keys cached from identity, verified tokens cached until
//! they expire, revocations applied on every call.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::token::{self, Claims, TokenError, VerificationKey};

/// Where verification keys come from: identity's `ListVerificationKeys` for every
/// service, identity's own store for identity, fixed keys in tests.
pub trait KeySource: Send + Sync + 'static {
    /// The keys that may have signed unexpired tokens.
    fn keys(&self) -> Pin<Box<dyn Future<Output = Result<Vec<VerificationKey>, String>> + Send + '_>>;
}

/// A fixed set of keys (tests, and identity's own bootstrap).
#[derive(Debug, Clone, Default)]
pub struct StaticKeys(pub Vec<VerificationKey>);

impl KeySource for StaticKeys {
    fn keys(&self) -> Pin<Box<dyn Future<Output = Result<Vec<VerificationKey>, String>> + Send + '_>> {
        let keys = self.0.clone();
        Box::pin(async move { Ok(keys) })
    }
}

/// What a verifier accepts.
#[derive(Debug, Clone)]
pub struct VerifierSettings {
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// Clock skew tolerated on `exp` and `iat`, in seconds.
    pub leeway_s: i64,
    /// Least time between two key fetches triggered by unknown key ids, so that a
    /// flood of forged kids cannot hammer identity.
    pub key_refresh_min_interval: Duration,
    /// Verified tokens remembered at most (the cache is cleared when full).
    pub cache_capacity: usize,
}

/// The verified principal behind a call, handed to handlers in the request extensions.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's claims.
    pub claims: Claims,
    /// The bearer token as received, passed on to downstream calls.
    token: Arc<str>,
}

impl Caller {
    /// A caller from claims and the token that carried them.
    pub fn new(claims: Claims, token: impl Into<Arc<str>>) -> Self {
        Self { claims, token: token.into() }
    }

    /// User id or client id: the actor recorded in events and audit trails.
    pub fn subject(&self) -> &str {
        &self.claims.sub
    }

    /// Whether the caller holds `permission`.
    pub fn has_permission(&self, permission: &str) -> bool {
        self.claims.perms.iter().any(|p| p == permission)
    }

    /// The token, for the `authorization` header of downstream calls.
    pub fn token(&self) -> &str {
        &self.token
    }
}

/// Verifies access tokens locally.
pub struct Verifier {
    settings: VerifierSettings,
    source: Arc<dyn KeySource>,
    keys: RwLock<HashMap<String, ed25519_dalek::VerifyingKey>>,
    /// When keys were last fetched; `None` before the first fetch.
    last_fetch: Mutex<Option<Instant>>,
    /// Serialises fetches so that concurrent unknown-kid calls share one.
    fetching: tokio::sync::Mutex<()>,
    verified: RwLock<HashMap<Arc<str>, Arc<Caller>>>,
    /// Subject → tokens issued before this instant (seconds) are refused.
    revoked: RwLock<HashMap<String, i64>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("settings", &self.settings).finish_non_exhaustive()
    }
}

fn now_s() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Verifier {
    /// A verifier fetching its keys from `source` when it meets an unknown key id.
    pub fn new(settings: VerifierSettings, source: Arc<dyn KeySource>) -> Self {
        Self {
            settings,
            source,
            keys: RwLock::new(HashMap::new()),
            last_fetch: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
            verified: RwLock::new(HashMap::new()),
            revoked: RwLock::new(HashMap::new()),
        }
    }

    /// The settings it was built with.
    pub fn settings(&self) -> &VerifierSettings {
        &self.settings
    }

    /// Verifies `token`: signature by a known key, expiry, issuer, audience and
    /// revocation.
    pub async fn verify(&self, token: &str) -> Result<Arc<Caller>, TokenError> {
        let now = now_s();
        if let Some(caller) = self.cached(token) {
            self.check_time_and_revocation(&caller.claims, now)?;
            return Ok(caller);
        }
        let unverified = token::parse(token)?;
        let key = match self.key(&unverified.kid) {
            Some(key) => key,
            None => {
                self.refresh_keys(&unverified.kid).await;
                self.key(&unverified.kid).ok_or(TokenError::UnknownKey)?
            }
        };
        let claims = unverified.verify(&key)?;
        token::check_claims(&claims, now, self.settings.leeway_s, &self.settings.issuer, &self.settings.audience)?;
        self.check_time_and_revocation(&claims, now)?;
        let token: Arc<str> = Arc::from(token);
        let caller = Arc::new(Caller::new(claims, token.clone()));
        self.remember(token, caller.clone());
        Ok(caller)
    }

    fn cached(&self, token: &str) -> Option<Arc<Caller>> {
        self.verified.read().ok()?.get(token).cloned()
    }

    fn remember(&self, token: Arc<str>, caller: Arc<Caller>) {
        if let Ok(mut cache) = self.verified.write() {
            if cache.len() >= self.settings.cache_capacity {
                // Cheap and bounded; expired entries go with the rest.
                cache.clear();
            }
            cache.insert(token, caller);
        }
    }

    fn check_time_and_revocation(&self, claims: &Claims, now: i64) -> Result<(), TokenError> {
        if claims.exp.saturating_add(self.settings.leeway_s) <= now {
            return Err(TokenError::Expired);
        }
        let revoked = self.revoked.read().map(|r| r.get(&claims.sub).copied()).unwrap_or(None);
        match revoked {
            Some(not_before) if claims.iat < not_before => Err(TokenError::Revoked),
            _ => Ok(()),
        }
    }

    fn key(&self, kid: &str) -> Option<ed25519_dalek::VerifyingKey> {
        self.keys.read().ok()?.get(kid).copied()
    }

    /// Fetches the key set, at most once per `key_refresh_min_interval` (the first
    /// fetch is never delayed).
    async fn refresh_keys(&self, wanted: &str) {
        let _guard = self.fetching.lock().await;
        if self.key(wanted).is_some() {
            return; // another call fetched it meanwhile
        }
        {
            let Ok(mut last) = self.last_fetch.lock() else { return };
            if last.is_some_and(|t| t.elapsed() < self.settings.key_refresh_min_interval) {
                return;
            }
            *last = Some(Instant::now());
        }
        match self.source.keys().await {
            Ok(keys) => self.set_keys(keys),
            Err(error) => tracing::warn!(%error, "verification keys could not be fetched"),
        }
    }

    /// Replaces the known keys.
    pub fn set_keys(&self, keys: Vec<VerificationKey>) {
        let keys: HashMap<_, _> = keys.into_iter().filter_map(|k| Some((k.kid.clone(), k.verifying_key()?))).collect();
        tracing::info!(keys = keys.len(), "verification keys loaded");
        if let Ok(mut known) = self.keys.write() {
            *known = keys;
        }
    }

    /// Refuses `subject`'s tokens issued before `not_before` (seconds since the epoch).
    pub fn revoke(&self, subject: &str, not_before: i64) {
        if let Ok(mut revoked) = self.revoked.write() {
            let entry = revoked.entry(subject.to_string()).or_insert(not_before);
            *entry = (*entry).max(not_before);
        }
    }

    /// Replaces the revocation list (loaded from the database).
    pub fn set_revocations(&self, revocations: HashMap<String, i64>) {
        if let Ok(mut revoked) = self.revoked.write() {
            *revoked = revocations;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::token::{DataScope, PrincipalKind, SigningKey, sign};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn settings() -> VerifierSettings {
        VerifierSettings {
            issuer: "crm-identity".into(),
            audience: "crm".into(),
            leeway_s: 30,
            key_refresh_min_interval: Duration::from_secs(60),
            cache_capacity: 100,
        }
    }

    fn claims(sub: &str, iat: i64) -> Claims {
        Claims {
            iss: "crm-identity".into(),
            sub: sub.into(),
            aud: "crm".into(),
            iat,
            exp: iat + 900,
            jti: "j".into(),
            kind: PrincipalKind::User,
            name: sub.into(),
            org: "HO".into(),
            org_path: "/HO/".into(),
            roles: vec![],
            perms: vec!["customer.read".into()],
            scope: DataScope::All,
        }
    }

    /// Counts fetches, to show unknown kids are rate-limited.
    struct Counting(Vec<VerificationKey>, AtomicUsize);

    impl KeySource for Counting {
        fn keys(&self) -> Pin<Box<dyn Future<Output = Result<Vec<VerificationKey>, String>> + Send + '_>> {
            self.1.fetch_add(1, Ordering::SeqCst);
            let keys = self.0.clone();
            Box::pin(async move { Ok(keys) })
        }
    }

    #[tokio::test]
    async fn keys_are_fetched_on_first_use_and_unknown_kids_do_not_hammer_the_source() {
        let key = SigningKey::generate("k1");
        let source = Arc::new(Counting(vec![key.verification_key()], AtomicUsize::new(0)));
        let verifier = Verifier::new(settings(), source.clone());
        let caller = verifier.verify(&sign(&claims("u1", now_s()), &key)).await.unwrap();
        assert_eq!(caller.subject(), "u1");
        assert!(caller.has_permission("customer.read"));
        assert!(!caller.has_permission("customer.pii.read"));
        let stranger = SigningKey::generate("k-unknown");
        for _ in 0..5 {
            let err = verifier.verify(&sign(&claims("u1", now_s()), &stranger)).await.unwrap_err();
            assert_eq!(err, TokenError::UnknownKey);
        }
        assert_eq!(source.1.load(Ordering::SeqCst), 1, "one fetch for the first token, none within the interval");
    }

    #[tokio::test]
    async fn a_revoked_subject_is_refused_even_from_the_cache_and_later_tokens_pass() {
        let key = SigningKey::generate("k1");
        let verifier = Verifier::new(settings(), Arc::new(StaticKeys(vec![key.verification_key()])));
        let now = now_s();
        let old = sign(&claims("u1", now - 10), &key);
        verifier.verify(&old).await.unwrap();
        verifier.revoke("u1", now - 5);
        assert_eq!(verifier.verify(&old).await.unwrap_err(), TokenError::Revoked);
        verifier.verify(&sign(&claims("u1", now), &key)).await.unwrap();
        verifier.verify(&sign(&claims("u2", now - 10), &key)).await.unwrap();
    }

    #[tokio::test]
    async fn tokens_pass_within_the_clock_leeway_after_expiry_and_fail_beyond_it() {
        let key = SigningKey::generate("k1");
        let verifier = Verifier::new(settings(), Arc::new(StaticKeys(vec![key.verification_key()])));
        let mut c = claims("u1", now_s() - 900);
        c.exp = now_s() - 29; // still inside the leeway
        let token = sign(&c, &key);
        verifier.verify(&token).await.unwrap();
        let mut c2 = c.clone();
        c2.exp = now_s() - 31;
        assert_eq!(verifier.verify(&sign(&c2, &key)).await.unwrap_err(), TokenError::Expired);
    }
}
