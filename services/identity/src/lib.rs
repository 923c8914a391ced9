//! identity: staff, the org tree, roles and service accounts; password and
//! client-credential logins; the short-lived signed access tokens and rotating
//! refresh tokens that every other service verifies locally (docs/auth.md).
//!
//! # Layout
//! - [`domain`]: the rules (identifiers, org paths, password policy, lockout, how
//!   roles combine); pure, no I/O.
//! - [`secrets`]: argon2id hashing, refresh tokens, encrypted signing-key seeds.
//! - [`tokens`]: signing with the current key, publishing verification keys.
//! - [`store`]: all SQL, one module per aggregate, with the audit entries and outbox
//!   events of each change; answers row structs, never proto types.
//! - [`convert`]: rows ↔ `crm.identity.v1` messages, data scopes ↔ their wire enum.
//! - [`grpc`]: `crm.identity.v1.AuthService` and `IdentityAdminService`, one file
//!   each: parse and check, call the store, map through [`convert`].
//! - [`access`]: the permission each RPC needs.
//! - [`settings`]: configuration, including the first administrator.
//! - [`error`]: the crate's error enum and its gRPC mapping.

pub mod access;
pub mod convert;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod secrets;
pub mod settings;
pub mod store;
pub mod tokens;

use std::future::Future;

use crm_platform::PlatformError;
use crm_platform::config::ConfigError;
use crm_platform::runtime::ServiceRuntime;
use crm_proto::crm::identity::v1::auth_service_server::AuthServiceServer;
use crm_proto::crm::identity::v1::identity_admin_service_server::IdentityAdminServiceServer;
use secrecy::ExposeSecret;
use sqlx::migrate::Migrator;

pub use settings::Settings;

/// This service's migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

fn startup_error(key: &str, reason: impl ToString) -> PlatformError {
    PlatformError::Config(ConfigError::Invalid {
        key: key.into(),
        env: crm_platform::config::env_var_for(settings::SERVICE, key),
        reason: reason.to_string(),
    })
}

/// On an empty database (no principal yet): the root org and the first administrator
/// from `identity.bootstrap`. The password is checked against the policy and hashed
/// only then; the store re-checks emptiness under a lock, so replicas starting
/// together create one administrator.
async fn bootstrap(
    pool: &sqlx::PgPool,
    s: &settings::IdentitySettings,
    hashing: &secrets::PasswordHashing,
) -> Result<(), PlatformError> {
    const PASSWORD_KEY: &str = "identity.bootstrap.admin_password";
    if !store::is_empty(pool).await.map_err(|e| PlatformError::Startup(format!("bootstrap: {e}")))? {
        return Ok(());
    }
    let Some(password) = &s.bootstrap.admin_password else {
        return Err(startup_error(PASSWORD_KEY, "is required while no user exists (first start)"));
    };
    let mut v = crm_platform::FieldViolations::new();
    domain::check_password("password", password.expose_secret(), &s.bootstrap.admin_login, &mut v);
    if let Some((_, problem)) = v.iter().next() {
        return Err(startup_error(PASSWORD_KEY, problem));
    }
    let admin = store::NewPrincipal {
        subject: uuid::Uuid::new_v4().to_string(),
        kind: crm_platform::auth::PrincipalKind::User,
        login: s.bootstrap.admin_login.clone(),
        display_name: "Administrator".into(),
        org_id: s.bootstrap.root_org_id.clone(),
        roles: vec!["ADMIN".into()],
        secret_hash: hashing.hash(password.expose_secret()).map_err(|e| startup_error("identity.argon2", e))?,
    };
    match store::bootstrap(pool, &s.bootstrap.root_org_id, &s.bootstrap.root_org_name, &admin).await {
        Ok(true) => {
            tracing::info!(login = %s.bootstrap.admin_login, org = %s.bootstrap.root_org_id, "first administrator created");
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => Err(PlatformError::Startup(format!("bootstrap: {e}"))),
    }
}

/// A built, not yet serving, identity service.
#[derive(Debug)]
pub struct Application {
    runtime: ServiceRuntime,
    api: grpc::IdentityApi,
}

impl Application {
    /// Connects, migrates, bootstraps an empty database, binds.
    pub async fn build(settings: Settings) -> Result<Self, PlatformError> {
        let s = &settings.service;
        let kek = s
            .key_encryption_key()
            .ok_or_else(|| startup_error("identity.key_encryption_key", "must be 64 hex digits"))?;
        let cipher = secrets::SeedCipher::new(&kek);
        let hashing = secrets::PasswordHashing::new(&s.argon2).map_err(|e| startup_error("identity.argon2", e))?;
        let mut runtime = ServiceRuntime::build(settings::SERVICE, settings.platform.clone(), &MIGRATOR).await?;
        let pool = runtime.pool.clone();

        bootstrap(&pool, s, &hashing).await?;

        let access_ttl = time::Duration::seconds(s.access_token_ttl_s);
        let issuer = tokens::TokenIssuer::new(
            pool.clone(),
            cipher,
            access_ttl,
            settings.platform.auth.issuer.clone(),
            settings.platform.auth.audience.clone(),
        );
        issuer.ensure_key().await.map_err(|e| PlatformError::Startup(format!("signing key: {e}")))?;
        let keys =
            tokens::StoreKeys::new(pool.clone(), access_ttl + time::Duration::seconds(settings.platform.auth.leeway_s));
        let verifier = runtime.verifier(std::sync::Arc::new(keys.clone()));
        runtime.protect(verifier, access::POLICY);
        let api = grpc::IdentityApi::new(pool, s, hashing, issuer, keys);
        Ok(Self { runtime, api })
    }

    /// The bound gRPC port.
    pub fn port(&self) -> u16 {
        self.runtime.port()
    }

    /// The database pool (tests inspect state through it).
    pub fn pool(&self) -> sqlx::PgPool {
        self.runtime.pool.clone()
    }

    /// Serves until `stop` resolves, then drains and stops.
    pub async fn run_until_stopped(self, stop: impl Future<Output = ()> + Send + 'static) -> Result<(), PlatformError> {
        let mut runtime = self.runtime;
        runtime
            .add_service(AuthServiceServer::new(self.api.clone()))
            .add_service(IdentityAdminServiceServer::new(self.api));
        runtime.run(stop).await
    }
}

/// The shared command line's view of this service.
#[derive(Debug)]
pub struct Identity;

impl crm_platform::cli::Service for Identity {
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Section = settings::IdentitySettings;

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    async fn serve(
        settings: Settings,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Application::build(settings).await?.run_until_stopped(stop).await?;
        Ok(())
    }
}
