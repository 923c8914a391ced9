//! The service's own section, `[identity]`: token lifetimes, password hashing, lockout
//! and the first administrator. The kit loads it with the platform sections
//! ([`crm_platform::config::Settings`]).

use crm_platform::config::{ConfigError, PlatformSettings, ServiceSection, Validator};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Service name: environment prefix `CRM_IDENTITY__`, events' source `crm/identity`.
pub const SERVICE: &str = "identity";

/// The service's settings: the platform sections and `[identity]`.
pub type Settings = crm_platform::config::Settings<IdentitySettings>;

/// Defaults of this service.
const DEFAULTS: &str = r#"
[identity]
access_token_ttl_s = 900
refresh_token_ttl_s = 28800
lockout_threshold = 5
lockout_duration_s = 900

# OWASP's argon2id recommendation (19 MiB, 2 passes, 1 lane): a login costs tens of
# milliseconds of one core, cheap for staff, expensive for a password-guessing attacker.
[identity.argon2]
memory_kib = 19456
iterations = 2
parallelism = 1

[identity.bootstrap]
root_org_id = "HO"
root_org_name = "Head Office"
admin_login = "admin"
"#;

/// Password-hashing cost.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Argon2Settings {
    /// Memory per hash, KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

/// What an empty database starts with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapSettings {
    /// Id of the root org (head office).
    pub root_org_id: String,
    /// Its name.
    pub root_org_name: String,
    /// Login of the first administrator.
    pub admin_login: String,
    /// Password of the first administrator; needed only while no user exists. A secret.
    pub admin_password: Option<SecretString>,
}

/// The `[identity]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySettings {
    /// Key (64 hex digits) encrypting signing-key seeds at rest. No default: a secret.
    pub key_encryption_key: SecretString,
    /// Access-token lifetime, seconds: short, because services verify tokens locally.
    pub access_token_ttl_s: i64,
    /// Refresh-token lifetime, seconds: about a working day.
    pub refresh_token_ttl_s: i64,
    /// Consecutive failed logins that lock a user.
    pub lockout_threshold: i32,
    /// How long a lock lasts, seconds.
    pub lockout_duration_s: i64,
    /// Password hashing.
    pub argon2: Argon2Settings,
    /// First start.
    pub bootstrap: BootstrapSettings,
}

impl IdentitySettings {
    /// The key-encryption key, if well-formed.
    pub fn key_encryption_key(&self) -> Option<crm_platform::crypto::Key32> {
        crm_platform::crypto::Key32::from_hex(self.key_encryption_key.expose_secret())
    }
}

impl ServiceSection for IdentitySettings {
    const SERVICE: &'static str = SERVICE;
    const SECTION: &'static str = "identity";
    const DEFAULTS: &'static str = DEFAULTS;

    fn validate(&self, platform: &PlatformSettings, v: &Validator<'_>) -> Result<(), ConfigError> {
        v.check(self.key_encryption_key().is_some(), "identity.key_encryption_key", "must be 64 hexadecimal digits")?;
        v.check(
            (60..=3600).contains(&self.access_token_ttl_s),
            "identity.access_token_ttl_s",
            "must be between 60 and 3600",
        )?;
        v.check(
            self.refresh_token_ttl_s >= self.access_token_ttl_s,
            "identity.refresh_token_ttl_s",
            "must not be shorter than the access-token lifetime",
        )?;
        v.check(self.lockout_threshold >= 1, "identity.lockout_threshold", "must be at least 1")?;
        v.check(self.lockout_duration_s >= 1, "identity.lockout_duration_s", "must be at least 1")?;
        v.check(
            self.argon2.memory_kib >= 8 * self.argon2.parallelism.max(1),
            "identity.argon2.memory_kib",
            "must be at least 8 × parallelism",
        )?;
        v.check(self.argon2.iterations >= 1, "identity.argon2.iterations", "must be at least 1")?;
        v.check(
            (1..=16).contains(&self.argon2.parallelism),
            "identity.argon2.parallelism",
            "must be between 1 and 16",
        )?;
        v.check(
            crate::domain::valid_org_id(&self.bootstrap.root_org_id),
            "identity.bootstrap.root_org_id",
            "must be 1-32 letters, digits, '-' or '_'",
        )?;
        v.check(
            crate::domain::valid_login(&self.bootstrap.admin_login),
            "identity.bootstrap.admin_login",
            "must be 3-64 letters, digits, '.', '-' or '_'",
        )?;
        v.check(
            self.access_token_ttl_s as u64 <= platform.auth.max_token_ttl_s,
            "auth.max_token_ttl_s",
            "must not be shorter than identity.access_token_ttl_s",
        )
    }
}
