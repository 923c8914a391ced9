//! The dev runner, following the `cargo xtask` convention (`cargo xtask <command>`).
//!
//! - `up`: builds every service in `services/` and starts each against the local
//!   PostgreSQL and RabbitMQ with this checkout's development secrets, databases and
//!   exchange (generated and named in [`dev`]; the services create and migrate their
//!   databases), waits until every one is SERVING, prints the endpoints and stays in the
//!   foreground until Ctrl-C, then stops them cleanly. If a service cannot start, is not
//!   SERVING within a minute, or exits (during start-up or later), it stops every
//!   service it started and exits non-zero naming the service and its log
//!   (`.dev/log/<service>.log`); see [`supervise`].
//! - `reset`: drops this checkout's development databases and exchange and deletes
//!   `.dev/`, so that the next `up` starts from new secrets and empty databases.
//! - `test`: the whole test suite (the README's test command): every test in the
//!   workspace, then, alone, the tests that restart the shared broker.
//! - `sample`: loads a generated sample of source records into a running
//!   customer-profile (see README).
//! - `new-service <name>`: writes a skeleton service from `xtask/template/` and
//!   registers it (chart values, compose, ports, development cluster); see
//!   [`new_service`].

mod dev;
mod new_service;
mod sample;
mod sample_value;
mod supervise;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

/// Fixed local ports, so that README commands and other services' settings stay
/// valid as services are added; a service not listed gets a port from 50060 on.
/// `new-service` adds the next port here.
const PORTS: &[(&str, u16)] = &[
    ("identity", 50051),
    ("customer-profile", 50052),
    ("analytics", 50053),
    ("marketing", 50054),
    ("service-request", 50055),
    ("notification", 50056),
];

fn port_of(service: &str, index: usize) -> u16 {
    PORTS.iter().find(|(s, _)| *s == service).map(|(_, p)| *p).unwrap_or(50060 + index as u16)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

fn services() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(workspace_root().join("services"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| e.path().join("Cargo.toml").exists())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd.status().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{cmd:?} failed with {status}")) }
}

/// Where cargo builds: `CARGO_TARGET_DIR` (relative to the workspace root, where `up`
/// runs cargo) or `target/`.
fn target_dir() -> PathBuf {
    workspace_root().join(std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into()))
}

/// How long `up` waits for every service to be SERVING.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// How long `up` gives a service to shut down cleanly before it kills it.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A service's settings in development: this checkout's database and exchange (see
/// [`dev`]), the local broker, a fixed port and the service's secrets.
fn env_for(service: &str, port: u16, secrets: &dev::Secrets) -> Vec<(String, String)> {
    let names = secrets.names();
    let var = |key: &str| crm_platform::config::env_var_for(service, key);
    let mut env = vec![
        (var("database.url"), format!("{}/{}", dev::database_server(), names.database(service))),
        (var("database.create_if_missing"), "true".into()),
        (var("messaging.url"), dev::amqp_url()),
        (var("messaging.exchange"), names.exchange()),
        (var("messaging.queue_prefix"), names.queue_prefix()),
        (var("grpc.host"), "127.0.0.1".into()),
        (var("grpc.port"), port.to_string()),
    ];
    env.extend(secrets.of(service).map(|(key, value)| (var(key), value.to_string())));
    // customer-profile's 360° view asks analytics for the value card.
    if service == "customer-profile"
        && let Some((_, analytics)) = PORTS.iter().find(|(s, _)| *s == "analytics")
    {
        env.push((var("customer.analytics.endpoint"), format!("http://127.0.0.1:{analytics}")));
    }
    env
}

/// Fails when a port `up` needs is taken, e.g. by another checkout's `up`: a service
/// on it would answer the health checks meant for ours.
fn check_ports_free(ports: &[(String, u16)]) -> Result<(), String> {
    for (service, port) in ports {
        if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", *port)) {
            return Err(format!(
                "port {port} ({service}) is not free: {e}; another `cargo xtask up` may be running \
                 (`ss -ltnp 'sport = :{port}'` shows which process has it)"
            ));
        }
    }
    Ok(())
}

/// Resolves on Ctrl-C, SIGTERM or SIGHUP (terminal closed).
async fn stop_requested() {
    use tokio::signal::unix::{SignalKind, signal};
    let (term, hup) = (signal(SignalKind::terminate()), signal(SignalKind::hangup()));
    let wait_for = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
        match s {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = wait_for(term) => {}
        () = wait_for(hup) => {}
    }
}

async fn up() -> Result<(), String> {
    let services = services();
    let ports: Vec<(String, u16)> = services.iter().enumerate().map(|(i, s)| (s.clone(), port_of(s, i))).collect();
    check_ports_free(&ports)?;
    let secrets = dev::Secrets::ensure()?;
    let names = secrets.names();
    let mut build = cargo();
    build.arg("build");
    for s in &services {
        build.args(["-p", s]);
    }
    run(&mut build)?;
    let bin_dir = target_dir().join("debug");
    let launches = ports
        .iter()
        .map(|(service, port)| {
            let mut command = Command::new(bin_dir.join(service));
            command.envs(env_for(service, *port, &secrets));
            supervise::Launch { name: service.clone(), command }
        })
        .collect();
    let supervision = supervise::Supervision {
        ready_within: READY_WITHIN,
        poll: Duration::from_millis(200),
        stop_grace: STOP_GRACE,
        echo: true,
    };
    let ready = |service: &str| {
        let port = ports.iter().find(|(s, _)| s == service).map(|(_, p)| *p).unwrap_or_default();
        async move {
            let endpoint = format!("http://127.0.0.1:{port}");
            crm_platform::grpc::health::check(&endpoint, "", Duration::from_secs(1)).await.unwrap_or(false)
        }
    };
    let log_dir = dev::log_dir();
    let explain = |failure: supervise::Failure| {
        format!(
            "{failure}\nevery service's output is in {}/\nto start over from new secrets and empty databases: \
             `cargo xtask reset`, then `cargo xtask up`",
            log_dir.display()
        )
    };
    // Cancelling the start-up (Ctrl-C) drops what it started, which stops it.
    let mut started = tokio::select! {
        started = supervise::start(launches, &log_dir, &supervision, ready) => started.map_err(explain)?,
        () = stop_requested() => {
            println!("\nstart-up interrupted; every service started is stopped");
            return Ok(());
        }
    };
    println!("\nCRM platform is up (Ctrl-C stops it):");
    for (service, port) in &ports {
        println!("  {service:<20} grpc://127.0.0.1:{port}   (grpcurl -plaintext 127.0.0.1:{port} list)");
    }
    if started.names().any(|service| service == "identity") {
        println!(
            "  administrator        login `{}`, password in {}",
            dev::DEV_ADMIN_LOGIN,
            dev::admin_password_path().display()
        );
    }
    println!("  logs                 {}/<service>.log", log_dir.display());
    println!(
        "  data                 databases {}<service>, exchange {}, queues {}*,",
        names.database_prefix(),
        names.exchange(),
        names.queue_prefix()
    );
    println!("                       all tied to the secrets in .dev/ (`cargo xtask reset` drops them and .dev/)");
    println!("  RabbitMQ management  http://127.0.0.1:15672 (guest/guest), if the plugin is enabled");
    println!("  traces               set OTEL_EXPORTER_OTLP_ENDPOINT before `up` to export them\n");
    started.run_until(stop_requested()).await.map_err(explain)?;
    println!("\nstopping…");
    for stopped in started.stop() {
        match stopped.status {
            Ok(status) => println!("  {} (pid {}) stopped ({status})", stopped.name, stopped.pid),
            Err(e) => println!("  {} (pid {}): {e}", stopped.name, stopped.pid),
        }
    }
    Ok(())
}

/// Drops the per-test databases earlier runs left behind.
async fn drop_test_databases() -> Result<(), String> {
    use sqlx::Connection;
    let url = format!("{}/postgres", crm_platform::testing::database_server_url());
    let mut conn = sqlx::PgConnection::connect(&url).await.map_err(|e| format!("PostgreSQL at {url}: {e}"))?;
    let names: Vec<String> = sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'crm\\_test\\_%'")
        .fetch_all(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    for name in names {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
            .execute(&mut conn)
            .await;
    }
    Ok(())
}

/// Names of the broker's queues or exchanges (`what`) that tests declared, read with
/// `rabbitmqctl` (AMQP cannot list them); empty when `rabbitmqctl` is not on this
/// machine (a remote test broker), with a note.
fn test_broker_objects(what: &str) -> Vec<String> {
    let listed = Command::new("timeout").args(["60", "rabbitmqctl", "-q", what, "name"]).output();
    match listed {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|name| name.starts_with("crm.test_"))
            .map(str::to_string)
            .collect(),
        _ => {
            eprintln!("xtask: could not list the broker's {what} with rabbitmqctl; test leftovers stay on the broker");
            Vec::new()
        }
    }
}

/// Deletes the queues and exchanges earlier test runs left on the broker. Each test
/// declares its own (a fresh exchange, a queue prefix): left alone they add up to
/// thousands, which the broker must recover on every restart.
async fn drop_test_queues() -> Result<(), String> {
    let (queues, exchanges) = (test_broker_objects("list_queues"), test_broker_objects("list_exchanges"));
    if queues.is_empty() && exchanges.is_empty() {
        return Ok(());
    }
    let url = crm_platform::testing::amqp_url();
    let deleted = tokio::time::timeout(Duration::from_secs(120), delete_on_broker(&url, &queues, &exchanges)).await;
    deleted.map_err(|_| format!("RabbitMQ at {url} did not delete the test queues within 120 s"))??;
    println!("xtask: deleted {} test queues and {} test exchanges", queues.len(), exchanges.len());
    Ok(())
}

async fn delete_on_broker(url: &str, queues: &[String], exchanges: &[String]) -> Result<(), String> {
    let connection = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .map_err(|e| format!("RabbitMQ at {url}: {e}"))?;
    let channel = connection.create_channel().await.map_err(|e| e.to_string())?;
    for queue in queues {
        channel
            .queue_delete(queue.as_str().into(), lapin::options::QueueDeleteOptions::default())
            .await
            .map_err(|e| format!("deleting queue {queue}: {e}"))?;
    }
    for exchange in exchanges {
        channel
            .exchange_delete(exchange.as_str().into(), lapin::options::ExchangeDeleteOptions::default())
            .await
            .map_err(|e| format!("deleting exchange {exchange}: {e}"))?;
    }
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}

async fn test(extra: &[String]) -> Result<(), String> {
    drop_test_databases().await?;
    drop_test_queues().await?;
    run(cargo().args(["test", "--workspace", "--locked"]).args(extra))?;
    // Tests that restart the shared broker run alone, after everything else.
    run(cargo().args(["test", "--workspace", "--locked"]).args(extra).args(["--", "--ignored", "--test-threads=1"]))?;
    drop_test_databases().await?;
    drop_test_queues().await
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("up") => up().await,
        Some("test") => test(&args[1..]).await,
        Some("sample") => sample::run(&args[1..]).await,
        Some("reset") => dev::reset().await,
        Some("new-service") => new_service::run(&args[1..]),
        _ => Err("usage: cargo xtask <up|reset|test|sample [--endpoint URL] [--identity URL] [--analytics URL] [--records N]|new-service NAME>"
            .into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
