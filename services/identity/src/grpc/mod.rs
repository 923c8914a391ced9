//! identity's gRPC services, one file each in proto order: `auth`
//! (`crm.identity.v1.AuthService`: logins, refresh, logout, verification keys) and
//! `admin` (`IdentityAdminService`: orgs, roles, users, service accounts, signing
//! keys, audit trail). Handlers parse and check the request (every bad field named),
//! call the store, and map its answer through `crate::convert`; this module holds
//! their shared state and checks.

mod admin;
mod auth;

use std::sync::Arc;

use crm_platform::FieldViolations;
use crm_platform::validate::{self, Lines};
use sqlx::PgPool;
use tonic::Request;

use crate::error::Error;
use crate::secrets::PasswordHashing;
use crate::settings::IdentitySettings;
use crate::store::{self, CallContext};
use crate::tokens::{StoreKeys, TokenIssuer};

/// Both gRPC services share this state.
#[derive(Debug, Clone)]
pub struct IdentityApi {
    pool: PgPool,
    hashing: Arc<PasswordHashing>,
    issuer: TokenIssuer,
    keys: StoreKeys,
    refresh_ttl: time::Duration,
    lockout: store::Lockout,
}

impl IdentityApi {
    /// The services over `pool`.
    pub fn new(
        pool: PgPool,
        settings: &IdentitySettings,
        hashing: PasswordHashing,
        issuer: TokenIssuer,
        keys: StoreKeys,
    ) -> Self {
        Self {
            pool,
            hashing: Arc::new(hashing),
            issuer,
            keys,
            refresh_ttl: time::Duration::seconds(settings.refresh_token_ttl_s),
            lockout: store::Lockout {
                threshold: settings.lockout_threshold,
                duration: time::Duration::seconds(settings.lockout_duration_s),
            },
        }
    }

    /// Hashing runs on the blocking pool: argon2id deliberately takes tens of
    /// milliseconds of CPU, which must not stall the async workers.
    async fn hash(&self, secret: String) -> Result<String, Error> {
        let hashing = self.hashing.clone();
        tokio::task::spawn_blocking(move || hashing.hash(&secret))
            .await
            .map_err(|e| Error::Secret(format!("hashing task: {e}")))?
    }

    async fn verify_secret(&self, secret: String, stored: Option<String>) -> Result<bool, Error> {
        let hashing = self.hashing.clone();
        tokio::task::spawn_blocking(move || hashing.verify(&secret, stored.as_deref()))
            .await
            .map_err(|e| Error::Secret(format!("hashing task: {e}")))
    }
}

fn actor<T>(request: &Request<T>) -> CallContext {
    CallContext::of(request)
}

/// The longest login (user login or client id) there can be.
const MAX_LOGIN_CHARS: usize = 128;
/// The longest name of an org or display name of a user.
const MAX_NAME_CHARS: usize = 200;

/// Checks a one-line text field against `max` characters (see [`validate::text`]).
fn bounded(v: &mut FieldViolations, field: &str, value: &str, max: usize) {
    validate::text(v, field, value, max, Lines::Single);
}

fn required(v: &mut FieldViolations, field: &str, value: &str) {
    if value.trim().is_empty() {
        v.add(field, "is required");
    }
}

/// Role codes as given: trimmed, sorted, deduplicated; empty ones named.
fn check_roles(codes: &[String], v: &mut FieldViolations) -> Vec<String> {
    let mut codes: Vec<String> = codes.iter().map(|c| c.trim().to_string()).collect();
    for (i, c) in codes.iter().enumerate() {
        if c.is_empty() {
            v.add(format!("role_codes[{i}]"), "must not be empty");
        }
    }
    codes.sort();
    codes.dedup();
    codes
}

/// A required identifier, trimmed; INVALID_ARGUMENT naming `field` when empty.
fn required_id<'a>(field: &str, value: &'a str) -> Result<&'a str, Error> {
    non_empty(value).ok_or_else(|| {
        let mut v = FieldViolations::new();
        v.add(field, "is required");
        Error::Invalid(v)
    })
}

fn non_empty(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty()).then_some(t)
}
