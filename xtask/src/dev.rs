//! This checkout's development data: the secrets `up` generates into `.dev/`, and the
//! PostgreSQL databases, RabbitMQ exchange and queues written with them.
//!
//! Databases and secrets cannot get out of step: the databases are named
//! `crm_dev_<id>_<service>`, the exchange `crm.dev.<id>` and the queues start with
//! `crm.dev.<id>.`, where `<id>` is the start of a SHA-256 of the secrets. New secrets
//! (a second checkout, a deleted `.dev/`) therefore always mean new, empty databases and
//! a broker of their own; a database is never read with a key other than the one that
//! wrote it, and two checkouts on one machine never consume each other's events.
//! `cargo xtask reset` drops this checkout's databases and exchange and deletes `.dev/`.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// Settings that are secrets in production and that `up` generates once per checkout
/// (kept in `.dev/`, which git ignores), so that data written in one session can be
/// read in the next.
/// Each is a 64-hex-digit key except identity's first administrator password, which
/// must pass the password policy (see [`Secrets::ensure`]).
const DEV_SECRETS: [(&str, &str); 3] = [
    ("customer-profile", "customer.pii_key"),
    ("identity", "identity.key_encryption_key"),
    ("identity", ADMIN_PASSWORD_KEY),
];

/// Login of identity's first administrator in development (the service's default).
pub const DEV_ADMIN_LOGIN: &str = "admin";
/// The setting holding that administrator's password.
const ADMIN_PASSWORD_KEY: &str = "identity.bootstrap.admin_password";

/// `.dev/`, where `up` keeps this checkout's secrets and the services' logs.
pub fn dev_dir() -> PathBuf {
    crate::workspace_root().join(".dev")
}

/// Where `up` writes each service's output, `<service>.log`.
pub fn log_dir() -> PathBuf {
    dev_dir().join("log")
}

/// Where `up` keeps a development secret.
fn secret_path(service: &str, key: &str) -> PathBuf {
    dev_dir().join(format!("{service}.{key}"))
}

/// Where the development administrator's password is.
pub fn admin_password_path() -> PathBuf {
    secret_path("identity", ADMIN_PASSWORD_KEY)
}

/// The development administrator's password, as `up` generated it.
pub fn admin_password() -> Result<String, String> {
    std::fs::read_to_string(admin_password_path())
        .map(|p| p.trim().to_string())
        .map_err(|e| format!("no development admin password in .dev/ (run `cargo xtask up` first): {e}"))
}

/// The PostgreSQL server `up` uses, without a database name.
pub fn database_server() -> String {
    std::env::var("CRM_DEV_DATABASE_SERVER").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// The RabbitMQ broker `up` uses.
pub fn amqp_url() -> String {
    std::env::var("CRM_DEV_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// This checkout's development secrets: (service, setting, value) in [`DEV_SECRETS`]
/// order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secrets(Vec<(&'static str, &'static str, String)>);

/// What `.dev/` holds.
#[derive(Debug)]
pub enum OnDisk {
    /// Every secret.
    Complete(Secrets),
    /// None of them.
    Absent,
    /// Some: the files named are missing.
    Incomplete(Vec<PathBuf>),
}

impl Secrets {
    /// Reads the secrets from `.dev/`, generating each one that is missing.
    pub fn ensure() -> Result<Self, String> {
        DEV_SECRETS
            .iter()
            .map(|&(service, key)| {
                let path = secret_path(service, key);
                if let Ok(existing) = std::fs::read_to_string(&path) {
                    return Ok((service, key, existing.trim().to_string()));
                }
                let value = generate(key)?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                }
                std::fs::write(&path, &value).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                Ok((service, key, value))
            })
            .collect::<Result<_, String>>()
            .map(Secrets)
    }

    /// Reads the secrets from `.dev/` without generating any.
    pub fn on_disk() -> OnDisk {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for &(service, key) in &DEV_SECRETS {
            let path = secret_path(service, key);
            match std::fs::read_to_string(&path) {
                Ok(value) => found.push((service, key, value.trim().to_string())),
                Err(_) => missing.push(path),
            }
        }
        match (found.is_empty(), missing.is_empty()) {
            (_, true) => OnDisk::Complete(Secrets(found)),
            (true, false) => OnDisk::Absent,
            (false, false) => OnDisk::Incomplete(missing),
        }
    }

    /// The settings and values of `service`'s secrets.
    pub fn of(&self, service: &str) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().filter(move |(s, _, _)| *s == service).map(|(_, key, value)| (*key, value.as_str()))
    }

    /// The names of the databases, exchange and queues these secrets belong to.
    pub fn names(&self) -> DevNames {
        let mut hash = Sha256::new();
        for (service, key, value) in &self.0 {
            hash.update(format!("{service}.{key}={value}\n"));
        }
        let id = hash.finalize().iter().take(4).map(|b| format!("{b:02x}")).collect();
        DevNames { id }
    }
}

/// A new value for the secret `key`.
fn generate(key: &str) -> Result<String, String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    // A password needs upper case and a symbol too (identity's password policy).
    Ok(if key == ADMIN_PASSWORD_KEY { format!("Dev-{}!", &hex[..20]) } else { hex })
}

/// The names of one set of secrets' development databases, exchange and queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevNames {
    /// Eight hex digits of the secrets' hash.
    id: String,
}

/// PostgreSQL's longest identifier, in bytes (longer ones are cut).
const MAX_IDENTIFIER: usize = 63;

impl DevNames {
    /// `service`'s database, `crm_dev_<id>_<service>` with `-` as `_`.
    pub fn database(&self, service: &str) -> String {
        let service: String = service
            .chars()
            .map(|c| c.to_ascii_lowercase())
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let mut name = format!("{}{service}", self.database_prefix());
        name.truncate(MAX_IDENTIFIER);
        name
    }

    /// What every one of these databases' names starts with.
    pub fn database_prefix(&self) -> String {
        format!("crm_dev_{}_", self.id)
    }

    /// The topic exchange (`messaging.exchange`).
    pub fn exchange(&self) -> String {
        format!("crm.dev.{}", self.id)
    }

    /// What every queue's name starts with (`messaging.queue_prefix`).
    pub fn queue_prefix(&self) -> String {
        format!("{}.", self.exchange())
    }
}

/// What every development database's name starts with, whatever its secrets.
const ANY_DEV_DATABASE: &str = "crm_dev_";

/// `cargo xtask reset`: drops this checkout's development databases and exchange and
/// deletes `.dev/`, so that the next `up` starts from new secrets and empty databases.
pub async fn reset() -> Result<(), String> {
    let server = database_server();
    let mut conn = connect(&server).await?;
    let dev_dir = dev_dir();
    let mut queues_left = None;
    match Secrets::on_disk() {
        OnDisk::Complete(secrets) => {
            let names = secrets.names();
            for db in drop_databases(&mut conn, &names.database_prefix()).await? {
                println!("dropped database {db}");
            }
            let unbound = match delete_exchange(&amqp_url(), &names.exchange()).await {
                Ok(()) => {
                    println!("deleted exchange {}", names.exchange());
                    " (unbound now, they receive nothing)"
                }
                Err(e) => {
                    println!("left exchange {}: {e}", names.exchange());
                    ""
                }
            };
            queues_left = Some((names.queue_prefix(), unbound));
        }
        OnDisk::Absent => println!("no development secrets in {}: no databases of this checkout", dev_dir.display()),
        OnDisk::Incomplete(missing) => {
            let missing: Vec<String> = missing.iter().map(|p| p.display().to_string()).collect();
            println!(
                "{} is missing, so the databases of the other secrets cannot be named (listed below)",
                missing.join(", ")
            );
        }
    }
    if dev_dir.exists() {
        std::fs::remove_dir_all(&dev_dir).map_err(|e| format!("cannot delete {}: {e}", dev_dir.display()))?;
        println!("deleted {} (secrets and logs)", dev_dir.display());
    }
    if let Some((prefix, unbound)) = queues_left {
        let pattern = format!("^{}", prefix.replace('.', "\\."));
        println!(
            "left RabbitMQ queues named {prefix}*{unbound}: AMQP cannot list queues to delete them; \
             delete them in the management UI or, on the broker's machine, with\n  \
             rabbitmqctl -q list_queues name --no-table-headers | grep '{pattern}' | xargs -r -n1 rabbitmqctl delete_queue"
        );
    }
    let others = databases_like(&mut conn, ANY_DEV_DATABASE).await?;
    if !others.is_empty() {
        println!("development databases of other checkouts or older secrets, left as they are: {}", others.join(", "));
    }
    println!("the next `cargo xtask up` generates new secrets and starts from empty databases");
    let _ = sqlx::Connection::close(conn).await;
    Ok(())
}

/// How long `reset` waits for PostgreSQL or RabbitMQ to answer.
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(15);

async fn connect(server: &str) -> Result<sqlx::PgConnection, String> {
    use sqlx::Connection;
    let url = format!("{server}/postgres");
    match tokio::time::timeout(ANSWER_WITHIN, sqlx::PgConnection::connect(&url)).await {
        Ok(connected) => connected.map_err(|e| format!("PostgreSQL at {url}: {e}")),
        Err(_) => Err(format!("PostgreSQL at {url} did not answer within {} s", ANSWER_WITHIN.as_secs())),
    }
}

/// The names of the databases whose name starts with `prefix`.
async fn databases_like(conn: &mut sqlx::PgConnection, prefix: &str) -> Result<Vec<String>, String> {
    let pattern = format!("{}%", prefix.replace('\\', "\\\\").replace('_', "\\_").replace('%', "\\%"));
    sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE $1 ORDER BY datname")
        .bind(pattern)
        .fetch_all(conn)
        .await
        .map_err(|e| format!("cannot list databases: {e}"))
}

/// Drops every database whose name starts with `prefix`, closing connections to it;
/// returns their names.
async fn drop_databases(conn: &mut sqlx::PgConnection, prefix: &str) -> Result<Vec<String>, String> {
    let names = databases_like(conn, prefix).await?;
    for name in &names {
        let statement = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", name.replace('"', "\"\""));
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut *conn)
            .await
            .map_err(|e| format!("cannot drop database {name}: {e}"))?;
    }
    Ok(names)
}

async fn delete_exchange(url: &str, exchange: &str) -> Result<(), String> {
    let delete = async {
        let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await?;
        let deleted = async {
            let channel = conn.create_channel().await?;
            channel.exchange_delete(exchange.into(), lapin::options::ExchangeDeleteOptions::default()).await
        }
        .await;
        let _ = conn.close(200, "reset".into()).await;
        deleted
    };
    match tokio::time::timeout(ANSWER_WITHIN, delete).await {
        Ok(deleted) => deleted.map_err(|e| format!("RabbitMQ: {e}")),
        Err(_) => Err(format!("RabbitMQ did not answer within {} s", ANSWER_WITHIN.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(pii_key: &str, kek: &str, password: &str) -> Secrets {
        Secrets(vec![
            ("customer-profile", "customer.pii_key", pii_key.to_string()),
            ("identity", "identity.key_encryption_key", kek.to_string()),
            ("identity", ADMIN_PASSWORD_KEY, password.to_string()),
        ])
    }

    fn some_secrets() -> Secrets {
        secrets(&"a".repeat(64), &"b".repeat(64), "Dev-0123456789abcdef0123!")
    }

    /// PostgreSQL's rule for an identifier that needs no quotes: a lower-case letter or
    /// underscore, then lower-case letters, digits and underscores, at most 63 bytes.
    fn is_plain_identifier(name: &str) -> bool {
        let mut chars = name.chars();
        chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && name.len() <= MAX_IDENTIFIER
    }

    #[test]
    fn the_same_secrets_always_name_the_same_databases_exchange_and_queues() {
        let names = some_secrets().names();
        assert_eq!(names, some_secrets().names());
        // Stable across Rust versions and machines, so a checkout keeps its databases:
        // `printf 'customer-profile.customer.pii_key=aaa…\nidentity.…\n' | sha256sum`.
        assert_eq!(names.id, "179ca8fc");
        assert_eq!(names.database("customer-profile"), "crm_dev_179ca8fc_customer_profile");
        assert_eq!(names.exchange(), "crm.dev.179ca8fc");
        assert_eq!(names.queue_prefix(), "crm.dev.179ca8fc.");
    }

    #[test]
    fn new_secrets_name_new_databases_and_a_new_exchange() {
        let old = some_secrets();
        let changed = [
            secrets(&"c".repeat(64), &"b".repeat(64), "Dev-0123456789abcdef0123!"),
            secrets(&"a".repeat(64), &"c".repeat(64), "Dev-0123456789abcdef0123!"),
            secrets(&"a".repeat(64), &"b".repeat(64), "Dev-0123456789abcdef9999!"),
            // The same values under other settings are other secrets.
            secrets(&"b".repeat(64), &"a".repeat(64), "Dev-0123456789abcdef0123!"),
        ];
        for new in changed {
            let (old, new) = (old.names(), new.names());
            assert_ne!(old.id, new.id);
            assert_ne!(old.database("identity"), new.database("identity"));
            assert_ne!(old.exchange(), new.exchange());
            assert!(!new.queue_prefix().starts_with(&old.queue_prefix()));
        }
    }

    #[test]
    fn development_database_names_are_valid_postgresql_identifiers() {
        let names = some_secrets().names();
        let mut services = crate::services();
        assert!(services.contains(&"customer-profile".to_string()));
        services.extend(["Odd Name-2".to_string(), "a-service-with-a-name-longer-than-postgres-allows".repeat(2)]);
        for service in services {
            let db = names.database(&service);
            assert!(is_plain_identifier(&db), "{db} (for {service})");
            assert!(db.starts_with(&names.database_prefix()), "{db}");
        }
    }

    #[test]
    fn each_service_gets_its_own_secrets_only() {
        let secrets = some_secrets();
        let identity: Vec<&str> = secrets.of("identity").map(|(key, _)| key).collect();
        assert_eq!(identity, ["identity.key_encryption_key", ADMIN_PASSWORD_KEY]);
        assert_eq!(secrets.of("customer-profile").count(), 1);
        assert_eq!(secrets.of("analytics").count(), 0);
    }

    #[test]
    fn a_generated_administrator_password_passes_the_password_policy() {
        let password = generate(ADMIN_PASSWORD_KEY).unwrap();
        assert!(password.chars().any(|c| c.is_ascii_uppercase()), "{password}");
        assert!(password.chars().any(|c| !c.is_ascii_alphanumeric()), "{password}");
        assert!(password.len() >= 12, "{password}");
        assert_eq!(generate("customer.pii_key").unwrap().len(), 64);
    }

    /// Against the local PostgreSQL (see README), like the services' tests.
    #[tokio::test]
    async fn dropping_a_checkouts_databases_leaves_other_checkouts_databases() {
        let mut conn = connect(&database_server()).await.unwrap();
        let suffix = format!("{:08x}", std::process::id());
        let mine = DevNames { id: format!("{suffix}a") };
        let other = DevNames { id: format!("{suffix}b") };
        let created = [mine.database("identity"), mine.database("customer-profile"), other.database("identity")];
        for db in &created {
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{db}\""))).execute(&mut conn).await.unwrap();
        }
        let dropped = drop_databases(&mut conn, &mine.database_prefix()).await.unwrap();
        let left = databases_like(&mut conn, &format!("crm_dev_{suffix}")).await.unwrap();
        drop_databases(&mut conn, &other.database_prefix()).await.unwrap();
        assert_eq!(dropped, [mine.database("customer-profile"), mine.database("identity")]);
        assert_eq!(left, [other.database("identity")]);
    }
}
