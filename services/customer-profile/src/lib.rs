//! customer-profile: the ECIF. Source systems push their customer records in; the
//! bank's identification rule decides which records are one real customer; survivorship
//! by source trust builds that customer's golden record; other systems read it and
//! follow its changes (created, updated, merged, unmerged) as events.
//!
//! # Layout
//! - [`domain`]: the bank's rules (ID numbers, validation, identification,
//!   survivorship, customer numbers, masking); pure, no I/O.
//! - [`store`]: all SQL: identity groups, parties, source records, suspects, history,
//!   maintained party details, data scope and access audit, and the outbox events
//!   written in the same transactions.
//! - [`file_load`]: the daily file, resumable, with rejected lines reported.
//! - [`grpc`]: `crm.customer.v1.CustomerService`, one file per RPC family; each
//!   handler parses, authorizes against the caller's data scope, calls the store and
//!   maps the answer.
//! - [`convert`]: wire ↔ domain, once: proto enums and stored codes to domain types,
//!   source records from requests and files to validated records, store rows to proto.
//! - [`access`]: the permission each RPC needs, data scopes, PII visibility.
//! - [`events`]: events consumed (identity's org changes, for data scopes).
//! - [`pii`]: encryption at rest and blind indexes for ID and phone numbers.
//! - [`sample`]: seeded synthetic source records (sample data, benchmarks).
//! - [`settings`]: configuration, including source systems and their trust.
//! - [`error`]: the crate's error enum and its gRPC mapping.

pub mod access;
pub mod convert;
pub mod domain;
pub mod error;
pub mod events;
pub mod file_load;
pub mod grpc;
pub mod limits;
pub mod pii;
pub mod sample;
pub mod settings;
pub mod store;
pub mod value_card;

use std::future::Future;

use crm_platform::runtime::ServiceRuntime;
use crm_proto::crm::customer::v1::customer_service_server::CustomerServiceServer;
use sqlx::migrate::Migrator;

pub use settings::Settings;

/// This service's migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// A built, not yet serving, customer-profile.
#[derive(Debug)]
pub struct Application {
    runtime: ServiceRuntime,
    api: grpc::CustomerApi,
}

impl Application {
    /// Connects, migrates and binds, ready to serve; tokens are verified with the keys
    /// identity publishes.
    pub async fn build(settings: Settings) -> Result<Self, crm_platform::PlatformError> {
        Self::build_with_keys(settings, None).await
    }

    /// [`Application::build`] with another source of verification keys (tests sign
    /// their own tokens).
    pub async fn build_with_keys(
        settings: Settings,
        keys: Option<std::sync::Arc<dyn crm_platform::auth::KeySource>>,
    ) -> Result<Self, crm_platform::PlatformError> {
        let trust = settings.service.trust_table();
        // Validated with the settings already; a bad key cannot reach this point.
        let pii = settings.service.pii_cipher().map_err(|e| {
            crm_platform::PlatformError::Config(crm_platform::config::ConfigError::Invalid {
                key: "customer.pii_key".into(),
                env: crm_platform::config::env_var_for(settings::SERVICE, "customer.pii_key"),
                reason: e.to_string(),
            })
        })?;
        let mut runtime = ServiceRuntime::build(settings::SERVICE, settings.platform.clone(), &MIGRATOR).await?;
        let verifier = match keys {
            Some(keys) => runtime.verifier(keys),
            None => runtime.identity_verifier()?,
        };
        runtime.protect(verifier, access::POLICY);
        let value_cards = value_card::ValueCards::new(&settings.service.analytics)?;
        let api = grpc::CustomerApi::new(&mut runtime, trust, pii, value_cards);
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
    pub async fn run_until_stopped(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), crm_platform::PlatformError> {
        let mut runtime = self.runtime;
        runtime.add_service(CustomerServiceServer::new(self.api));
        runtime.consumer("org-directory", &[events::ORG_CHANGED], events::OrgDirectoryHandler);
        runtime.run(stop).await
    }
}

/// The shared command line's view of this service.
#[derive(Debug)]
pub struct CustomerProfile;

impl crm_platform::cli::Service for CustomerProfile {
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Section = settings::CustomerSettings;

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn command(name: &str, args: Vec<String>, settings: Settings) -> Option<crm_platform::cli::Command> {
        (name == "load-file").then(|| {
            Box::pin(async move {
                let usage = "usage: customer-profile load-file <path> [--actor ID] [--encoding utf-8|gb18030]";
                let path = args.first().ok_or(usage)?;
                let option = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
                let actor = option("--actor");
                let encoding = match option("--encoding") {
                    Some(name) => Some(file_load::FileEncoding::from_name(&name).ok_or(usage)?),
                    None => None,
                };
                let pii = settings.service.pii_cipher()?;
                let pool = crm_platform::db::connect(&settings.platform.database).await?;
                if settings.platform.database.migrate_on_start {
                    crm_platform::db::migrate(&pool, &MIGRATOR).await?;
                }
                let trust = settings.service.trust_table();
                let report = file_load::load_file_encoded(
                    &pool,
                    &trust,
                    &pii,
                    std::path::Path::new(path),
                    2000,
                    actor.as_deref(),
                    encoding,
                )
                .await?;
                println!(
                    "{path}: resumed after line {}, {} lines read, {} accepted, {} rejected",
                    report.resumed_after_line,
                    report.lines_read,
                    report.accepted,
                    report.rejected.len()
                );
                for (line, reason) in &report.rejected {
                    println!("  line {line}: {reason}");
                }
                // The events of the load are in the outbox; the running service's relay
                // publishes them.
                pool.close().await;
                Ok(())
            }) as crm_platform::cli::Command
        })
    }

    async fn serve(
        settings: Settings,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Application::build(settings).await?.run_until_stopped(stop).await?;
        Ok(())
    }
}
