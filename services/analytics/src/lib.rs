//! analytics: what each customer is worth to the bank. It keeps the facts the bank's
//! systems feed it (catalogue, FX rates, daily balances, transactions), resolves them to
//! customers through a copy of customer-profile's identification (facts for customers
//! not known yet wait), and keeps every customer's AUM and level current as facts,
//! merges, rules and month closings arrive: each customer's value is the replay of its
//! facts, so the incremental path and the full recompute agree by construction. Rule
//! tags are re-evaluated with every recompute of a customer's value, and so is the
//! customer's membership of every segment (each entry and exit kept, so the members
//! at any past time answer, and announced); a segment's members now or then are kept
//! on request as snapshots that marketing streams out. Business targets
//! are issued to orgs, decomposed down the org tree to sub-orgs and RMs, and measured
//! against the facts on request, within the caller's data scope.
//!
//! # Layout
//! - [`grpc`]: `crm.analytics.v1.AnalyticsService`, one file per RPC family.
//! - [`access`]: the permission each RPC needs.
//! - [`balance_file`]: the daily balance file (`analytics load-balances`), resumable,
//!   with rejected lines reported.
//! - [`convert`]: wire ↔ domain, once.
//! - [`domain`]: the rules; pure, no I/O.
//! - [`store`]: the SQL, one module per aggregate, with the events of each change.
//! - [`events`]: events published and consumed.
//! - [`revaluer`]: the background task that recomputes customers their changes marked due.
//! - [`settings`]: configuration, the `[analytics]` section.
//! - [`error`]: the crate's error enum and its gRPC mapping.

pub mod access;
pub mod balance_file;
pub mod convert;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod revaluer;
pub mod settings;
pub mod store;

use std::future::Future;
use std::sync::Arc;

use crm_platform::PlatformError;
use crm_platform::auth::KeySource;
use crm_platform::runtime::ServiceRuntime;
use crm_proto::crm::analytics::v1::analytics_service_server::AnalyticsServiceServer;
use sqlx::migrate::Migrator;

pub use settings::Settings;

/// This service's migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// A built, not yet serving, analytics.
#[derive(Debug)]
pub struct Application {
    runtime: ServiceRuntime,
    api: grpc::AnalyticsApi,
}

impl Application {
    /// Connects, migrates and binds, ready to serve; tokens are verified with the keys
    /// identity publishes.
    pub async fn build(settings: Settings) -> Result<Self, PlatformError> {
        Self::build_with_keys(settings, None).await
    }

    /// [`Application::build`] with another source of verification keys (tests sign
    /// their own tokens).
    pub async fn build_with_keys(settings: Settings, keys: Option<Arc<dyn KeySource>>) -> Result<Self, PlatformError> {
        let mut runtime = ServiceRuntime::build(settings::SERVICE, settings.platform.clone(), &MIGRATOR).await?;
        let verifier = match keys {
            Some(keys) => runtime.verifier(keys),
            None => runtime.identity_verifier()?,
        };
        runtime.protect(verifier, access::POLICY);
        let api = grpc::AnalyticsApi::new(runtime.pool.clone(), settings.service);
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
        let revaluer = revaluer::run(runtime.pool.clone(), self.api.settings().clone(), runtime.stop_token());
        runtime.task("revaluer", revaluer);
        runtime.add_service(AnalyticsServiceServer::new(self.api));
        runtime.consumer("customers", &events::CUSTOMER_EVENTS, events::CustomerHandler);
        runtime.consumer("transactions", &[events::TRANSACTION_POSTED], events::TransactionPostedHandler);
        runtime.consumer("scope", &events::SCOPE_EVENTS, events::ScopeHandler);
        runtime.run(stop).await
    }
}

/// The shared command line's view of this service.
#[derive(Debug)]
pub struct Analytics;

impl crm_platform::cli::Service for Analytics {
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Section = settings::AnalyticsSettings;

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn command(name: &str, args: Vec<String>, settings: Settings) -> Option<crm_platform::cli::Command> {
        if name == "recompute-all" {
            return Some(Box::pin(async move {
                let pool = crm_platform::db::connect(&settings.platform.database).await?;
                if settings.platform.database.migrate_on_start {
                    crm_platform::db::migrate(&pool, &MIGRATOR).await?;
                }
                let mut steps = grpc::recompute_all(pool.clone()).await.map_err(|s| s.message().to_string())?;
                while let Some(step) = futures::StreamExt::next(&mut steps).await {
                    let p = step.map_err(|s| s.message().to_string())?;
                    println!(
                        "{} of {} customers recomputed, {} level changes",
                        p.customers_done, p.customers_total, p.level_changes
                    );
                }
                // LevelChanged events are in the outbox; the running service's relay
                // publishes them.
                pool.close().await;
                Ok(())
            }) as crm_platform::cli::Command);
        }
        (name == "load-balances").then(|| {
            Box::pin(async move {
                let usage = "usage: analytics load-balances <path> [--encoding utf-8|gb18030]";
                let path = args.first().ok_or(usage)?;
                let option = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
                let encoding = match option("--encoding") {
                    Some(name) => Some(crm_platform::file_load::FileEncoding::from_name(&name).ok_or(usage)?),
                    None => None,
                };
                let pool = crm_platform::db::connect(&settings.platform.database).await?;
                if settings.platform.database.migrate_on_start {
                    crm_platform::db::migrate(&pool, &MIGRATOR).await?;
                }
                let chunk = settings.service.facts_per_transaction;
                let report =
                    balance_file::load_balance_file(&pool, std::path::Path::new(path), encoding, chunk).await?;
                println!("{path}: {}", report.summary());
                for (line, reason) in &report.file.rejected {
                    println!("  line {line}: {reason}");
                }
                // LevelChanged events of the load are in the outbox; the running
                // service's relay publishes them.
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
