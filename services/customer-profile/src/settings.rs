//! The service's own section, `[customer]`: the PII key and source-system trust. The kit
//! loads it with the platform sections ([`crm_platform::config::Settings`]).

use std::collections::HashMap;

use crm_platform::config::{ConfigError, PlatformSettings, ServiceSection, Validator};
use serde::Deserialize;

use crate::domain::{Attribute, TrustTable};

/// Service name: environment prefix `CRM_CUSTOMER_PROFILE__`, events' source `crm/customer-profile`.
pub const SERVICE: &str = "customer-profile";

/// The service's settings: the platform sections and `[customer]`.
pub type Settings = crm_platform::config::Settings<CustomerSettings>;

/// Defaults of this service. Source systems and their trust are configuration, not
/// code: a bank adds a system with a `[customer.sources.<CODE>]` block.
const DEFAULTS: &str = r#"
[customer]
default_trust = 10

[customer.analytics]
endpoint = ""
timeout_ms = 300

[customer.sources.CORE]
trust = 90

[customer.sources.CARDS]
trust = 60
attributes = { mobile_phone = 95, email = 95 }

[customer.sources.LOANS]
trust = 70

[customer.sources.WEALTH]
trust = 50

[customer.sources.CALL_CENTRE]
trust = 30
attributes = { mobile_phone = 70 }
"#;

/// Trust of one source system.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceTrust {
    /// Trust for every attribute not listed below.
    pub trust: i32,
    /// Trust per attribute (`name`, `gender`, `birth_date`, `nationality`,
    /// `mobile_phone`, `email`, `address`, `occupation`, `id_number`).
    #[serde(default)]
    pub attributes: HashMap<String, i32>,
}

/// The `[customer]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerSettings {
    /// Master key (64 hex digits) for encrypting ID and phone numbers at rest and for
    /// their blind indexes. No default: it comes from a secret.
    pub pii_key: secrecy::SecretString,
    /// Trust of a source system that is not configured; records from it are accepted
    /// but lose every survivorship contest against configured sources.
    pub default_trust: i32,
    /// Known source systems by code.
    pub sources: HashMap<String, SourceTrust>,
    /// Where the 360° view's value card comes from.
    pub analytics: AnalyticsClientSettings,
}

/// `[customer.analytics]`: the analytics service the 360° view asks for the value card.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsClientSettings {
    /// `http://host:port` of analytics; empty: views answer without a value card
    /// (`VALUE_CARD_STATUS_NOT_CONFIGURED`).
    pub endpoint: String,
    /// How long a view waits for the value card before answering without it.
    pub timeout_ms: u64,
}

impl CustomerSettings {
    /// The survivorship trust table.
    pub fn trust_table(&self) -> TrustTable {
        let mut table = TrustTable::new(self.default_trust);
        for (system, source) in &self.sources {
            table.set_source_default(system, source.trust);
            for attribute in Attribute::ALL {
                if let Some(trust) = source.attributes.get(attribute.code()) {
                    table.set(system, attribute, *trust);
                }
            }
        }
        table
    }

    /// The cipher for ID and phone numbers.
    pub fn pii_cipher(&self) -> Result<crate::pii::PiiCipher, crate::pii::PiiError> {
        use secrecy::ExposeSecret;
        crate::pii::PiiCipher::from_hex(self.pii_key.expose_secret())
    }
}

impl ServiceSection for CustomerSettings {
    const SERVICE: &'static str = SERVICE;
    const SECTION: &'static str = "customer";
    const DEFAULTS: &'static str = DEFAULTS;

    fn validate(&self, _platform: &PlatformSettings, v: &Validator<'_>) -> Result<(), ConfigError> {
        v.check(self.pii_cipher().is_ok(), "customer.pii_key", "must be 64 hexadecimal digits (32 bytes)")?;
        v.check(
            self.analytics.endpoint.is_empty() || self.analytics.endpoint.starts_with("http"),
            "customer.analytics.endpoint",
            "must be empty or an http:// URL",
        )?;
        v.check(
            (1..=10_000).contains(&self.analytics.timeout_ms),
            "customer.analytics.timeout_ms",
            "must be 1..=10000",
        )?;
        for (system, source) in &self.sources {
            for key in source.attributes.keys() {
                v.check(
                    Attribute::ALL.iter().any(|a| a.code() == key),
                    &format!("customer.sources.{system}.attributes.{key}"),
                    "is not a known attribute",
                )?;
            }
        }
        Ok(())
    }
}
