//! The service's own PostgreSQL database: pool, creation in development, migrations.

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::config::DatabaseSettings;
use crate::error::PlatformError;
use crate::sqlstate::DbFailure;

/// The kit's own tables (outbox, inbox), migrated into the `crm_kit` schema with their
/// own history table so that they version independently of each service's tables.
fn kit_migrator() -> Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.dangerous_set_table_name("crm_kit._sqlx_migrations");
    migrator.create_schema("crm_kit");
    migrator
}

/// Connection options parsed from the settings' URL.
pub fn connect_options(settings: &DatabaseSettings) -> Result<PgConnectOptions, PlatformError> {
    let options: PgConnectOptions = settings.url.expose_secret().parse()?;
    // JIT compilation pays off for analytic queries that run for seconds; for the
    // services' short look-ups it only adds tens of milliseconds whenever stale
    // statistics (right after a bulk load) make a plan look expensive.
    Ok(options.log_statements(tracing::log::LevelFilter::Debug).options([("jit", "off")]))
}

/// A pool for the configured database, creating the database first when
/// `create_if_missing` is set.
pub async fn connect(settings: &DatabaseSettings) -> Result<PgPool, PlatformError> {
    let options = connect_options(settings)?;
    if settings.create_if_missing {
        create_database_if_missing(&options).await?;
    }
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Creates the database named in `options` unless it exists, connecting to the
/// `postgres` maintenance database to do so.
pub async fn create_database_if_missing(options: &PgConnectOptions) -> Result<(), PlatformError> {
    let name = options.get_database().unwrap_or("postgres").to_string();
    let mut admin = sqlx::PgConnection::connect_with(&options.clone().database("postgres")).await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut admin)
        .await?;
    if !exists {
        let quoted = name.replace('"', "\"\"");
        match sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{quoted}\""))).execute(&mut admin).await {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Two replicas starting together may race; the loser finds it created.
            Err(e) if DbFailure::of(&e) == DbFailure::DuplicateDatabase => {}
            Err(e) => return Err(e.into()),
        }
    }
    admin.close().await?;
    Ok(())
}

/// Applies the kit's migrations, then the service's. Both take PostgreSQL advisory
/// locks, so replicas starting together migrate once.
pub async fn migrate(pool: &PgPool, service: &Migrator) -> Result<(), PlatformError> {
    kit_migrator().run(pool).await?;
    service.run(pool).await?;
    Ok(())
}

/// Whether the database answers a trivial query within `timeout`.
pub async fn is_reachable(pool: &PgPool, timeout: Duration) -> bool {
    matches!(tokio::time::timeout(timeout, sqlx::query("SELECT 1").execute(pool)).await, Ok(Ok(_)))
}
