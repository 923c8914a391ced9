//! The dev runner, following the `cargo xtask` convention (`cargo xtask <command>`).
//!
//! - `up`: creates each service's database, migrates, starts every service in
//!   `services/` against the local PostgreSQL and RabbitMQ, waits for health, prints the
//!   endpoints and stays in the foreground until Ctrl-C, then stops them cleanly.
//! - `test`: the whole test suite (the README's test command): every test in the
//!   workspace, then, alone, the tests that restart the shared broker.
//! - `sample`: loads a generated sample of source records into a running
//!   customer-profile (see README).

mod sample;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// Fixed local ports, so that README commands and other services' settings stay
/// valid as services are added; a service not listed gets a port from 50060 on.
const PORTS: [(&str, u16); 6] = [
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

/// Settings that are secrets in production and that `up` generates once per checkout
/// (kept in `.dev/`, which git ignores), so that data written in one session can be
/// read in the next.
/// Each is a 64-hex-digit key except identity's first administrator password, which
/// must pass the password policy (see [`dev_secret`]).
const DEV_SECRETS: [(&str, &str); 3] = [
    ("customer-profile", "customer.pii_key"),
    ("identity", "identity.key_encryption_key"),
    ("identity", ADMIN_PASSWORD_KEY),
];

/// Login of identity's first administrator in development (the service's default).
const DEV_ADMIN_LOGIN: &str = "admin";
/// The setting holding that administrator's password.
const ADMIN_PASSWORD_KEY: &str = "identity.bootstrap.admin_password";

/// Where `up` keeps a development secret.
fn dev_secret_path(service: &str, key: &str) -> PathBuf {
    workspace_root().join(".dev").join(format!("{service}.{key}"))
}

fn dev_secret(service: &str, key: &str) -> Result<String, String> {
    let path = dev_secret_path(service, key);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(existing.trim().to_string());
    }
    let mut bytes = [0u8; 32];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    // A password needs upper case and a symbol too (identity's password policy).
    let value = if key == ADMIN_PASSWORD_KEY { format!("Dev-{}!", &hex[..20]) } else { hex };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    std::fs::write(&path, &value).map_err(|e| e.to_string())?;
    Ok(value)
}

/// The development administrator's password, as `up` generated it.
fn dev_admin_password() -> Result<String, String> {
    std::fs::read_to_string(dev_secret_path("identity", ADMIN_PASSWORD_KEY))
        .map(|p| p.trim().to_string())
        .map_err(|e| format!("no development admin password in .dev/ (run `cargo xtask up` first): {e}"))
}

fn env_for(service: &str, port: u16) -> Result<Vec<(String, String)>, String> {
    let prefix = crm_platform::config::env_prefix(service);
    let db = format!("crm_{}", service.replace('-', "_"));
    let pg = std::env::var("CRM_DEV_DATABASE_SERVER").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let amqp = std::env::var("CRM_DEV_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let mut env = vec![
        (format!("{prefix}__DATABASE__URL"), format!("{pg}/{db}")),
        (format!("{prefix}__DATABASE__CREATE_IF_MISSING"), "true".into()),
        (format!("{prefix}__MESSAGING__URL"), amqp),
        (format!("{prefix}__GRPC__HOST"), "127.0.0.1".into()),
        (format!("{prefix}__GRPC__PORT"), port.to_string()),
    ];
    for (_, key) in DEV_SECRETS.iter().filter(|(s, _)| *s == service) {
        env.push((crm_platform::config::env_var_for(service, key), dev_secret(service, key)?));
    }
    Ok(env)
}

async fn up() -> Result<(), String> {
    let services = services();
    let mut build = cargo();
    build.arg("build");
    for s in &services {
        build.args(["-p", s]);
    }
    run(&mut build)?;
    let bin_dir = workspace_root().join("target/debug");
    let mut children: Vec<(String, u16, Child)> = Vec::new();
    for (i, service) in services.iter().enumerate() {
        let port = port_of(service, i);
        let child = Command::new(bin_dir.join(service))
            .envs(env_for(service, port)?)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {service}: {e}"))?;
        children.push((service.clone(), port, child));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for (service, port, child) in &mut children {
        let endpoint = format!("http://127.0.0.1:{port}");
        loop {
            if crm_platform::grpc::health::check(&endpoint, "", Duration::from_secs(1)).await.unwrap_or(false) {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("{service} exited during start-up with {status}"));
            }
            if Instant::now() > deadline {
                return Err(format!("{service} did not become healthy within 60 s"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    println!("\nCRM platform is up (Ctrl-C stops it):");
    for (service, port, _) in &children {
        println!("  {service:<20} grpc://127.0.0.1:{port}   (grpcurl -plaintext 127.0.0.1:{port} list)");
    }
    if children.iter().any(|(service, _, _)| service == "identity") {
        println!(
            "  administrator        login `{DEV_ADMIN_LOGIN}`, password in {}",
            dev_secret_path("identity", ADMIN_PASSWORD_KEY).display()
        );
    }
    println!("  RabbitMQ management  http://127.0.0.1:15672 (guest/guest), if the plugin is enabled");
    println!("  traces               set OTEL_EXPORTER_OTLP_ENDPOINT before `up` to export them\n");
    let _ = tokio::signal::ctrl_c().await;
    println!("\nstopping…");
    for (_, _, child) in &children {
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    }
    for (service, _, child) in &mut children {
        match child.wait() {
            Ok(status) => println!("  {service} stopped ({status})"),
            Err(e) => println!("  {service}: {e}"),
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

async fn test(extra: &[String]) -> Result<(), String> {
    drop_test_databases().await?;
    run(cargo().args(["test", "--workspace", "--locked"]).args(extra))?;
    // Tests that restart the shared broker run alone, after everything else.
    run(cargo().args(["test", "--workspace", "--locked"]).args(extra).args(["--", "--ignored", "--test-threads=1"]))?;
    drop_test_databases().await
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("up") => up().await,
        Some("test") => test(&args[1..]).await,
        Some("sample") => sample::run(&args[1..]).await,
        _ => Err("usage: cargo xtask <up|test|sample [--endpoint URL] [--identity URL] [--records N]>".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
