//! The command line every service binary shares:
//!
//! - `<service>` serves until SIGTERM/SIGINT;
//! - `<service> migrate` applies the database migrations and exits (deployment hooks);
//! - `<service> healthcheck` exits 0 when the local server reports SERVING (container
//!   health checks, where no grpcurl is installed).

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use sqlx::migrate::Migrator;

use crate::config::{ServiceSection, Settings};

/// Errors a command reports before exiting non-zero.
pub type CommandError = Box<dyn std::error::Error + Send + Sync>;

/// A service-specific command, ready to run.
pub type Command = std::pin::Pin<Box<dyn Future<Output = Result<(), CommandError>> + Send>>;

/// What a service tells the shared command line about itself.
pub trait Service {
    /// Build version, from `CARGO_PKG_VERSION`.
    const VERSION: &'static str;
    /// The service's own settings section (its name is the service's name).
    type Section: ServiceSection;
    /// The service's migrations.
    fn migrator() -> &'static Migrator;
    /// A service's own commands (e.g. customer-profile's `load-file`): `None` when
    /// `name` is not one of them.
    fn command(name: &str, args: Vec<String>, settings: Settings<Self::Section>) -> Option<Command> {
        let _ = (name, args, settings);
        None
    }

    /// Builds the application and serves until `stop` resolves.
    fn serve(
        settings: Settings<Self::Section>,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>> + Send;
}

/// Runs the command given on the command line.
pub async fn main<S: Service>() -> ExitCode {
    let command = std::env::args().nth(1).unwrap_or_default();
    let name = S::Section::SERVICE;
    let settings = match Settings::<S::Section>::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    let platform = settings.platform.clone();
    // Named on statement spans; a URL that does not parse fails later, where it is used.
    let database = crate::db::connect_options(&platform.database).ok();
    let database = database.as_ref().and_then(|o| o.get_database());
    match command.as_str() {
        "healthcheck" => {
            let endpoint = format!("http://127.0.0.1:{}", platform.grpc.port);
            match crate::grpc::health::check(&endpoint, "", Duration::from_secs(3)).await {
                Ok(true) => ExitCode::SUCCESS,
                _ => ExitCode::FAILURE,
            }
        }
        "migrate" | "" | "serve" => {
            let telemetry = match crate::telemetry::init(name, S::VERSION, &platform.telemetry, database) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("{name}: {e}");
                    return ExitCode::from(2);
                }
            };
            let result = if command == "migrate" {
                crate::runtime::migrate_only(&platform, S::migrator())
                    .await
                    .map(|()| tracing::info!(service = name, "migrations applied"))
                    .map_err(Into::into)
            } else {
                S::serve(settings, crate::shutdown::signal()).await
            };
            let code = match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(service = name, error = %e, "service failed");
                    ExitCode::FAILURE
                }
            };
            telemetry.shutdown();
            code
        }
        other => {
            let args: Vec<String> = std::env::args().skip(2).collect();
            let Some(run) = S::command(other, args, settings) else {
                eprintln!("{name}: unknown command `{other}`; expected nothing (serve), `migrate` or `healthcheck`");
                return ExitCode::from(2);
            };
            let telemetry = match crate::telemetry::init(name, S::VERSION, &platform.telemetry, database) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("{name}: {e}");
                    return ExitCode::from(2);
                }
            };
            let code = match run.await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{name}: {other} failed: {e}");
                    ExitCode::FAILURE
                }
            };
            telemetry.shutdown();
            code
        }
    }
}
