//! The service's own section, `[analytics]` (`CRM_ANALYTICS__ANALYTICS__<KEY>`). The kit
//! loads it with the platform sections ([`crm_platform::config::Settings`]).

use crm_platform::config::{ConfigError, PlatformSettings, ServiceSection, Validator};
use serde::Deserialize;

/// Service name: environment prefix `CRM_ANALYTICS__`, events' source `crm/analytics`.
pub const SERVICE: &str = "analytics";

/// The service's settings: the platform sections and `[analytics]`.
pub type Settings = crm_platform::config::Settings<AnalyticsSettings>;

/// Defaults of this service.
const DEFAULTS: &str = r#"
[analytics]
max_stream_facts = 100000
facts_per_transaction = 500
max_products_per_call = 1000
revaluation_batch = 500
revaluation_idle_poll_ms = 100
rfm_rescore_interval_ms = 2000
"#;

/// The `[analytics]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsSettings {
    /// Most facts one LoadBalances / RecordTransactions stream may carry (the contract
    /// documents 100,000).
    pub max_stream_facts: usize,
    /// Facts of a stream stored (and their customers recomputed) per transaction.
    pub facts_per_transaction: usize,
    /// Most products one UpsertProducts call may carry.
    pub max_products_per_call: usize,
    /// Due customers the revaluer recomputes per transaction.
    pub revaluation_batch: usize,
    /// How often an idle revaluer looks for due customers, ms.
    pub revaluation_idle_poll_ms: u64,
    /// Least time between two RFM rescores while customers keep coming due, ms (an
    /// emptied queue rescores at once).
    pub rfm_rescore_interval_ms: u64,
}

impl ServiceSection for AnalyticsSettings {
    const SERVICE: &'static str = SERVICE;
    const SECTION: &'static str = "analytics";
    const DEFAULTS: &'static str = DEFAULTS;

    fn validate(&self, _platform: &PlatformSettings, v: &Validator<'_>) -> Result<(), ConfigError> {
        v.check((1..=1_000_000).contains(&self.max_stream_facts), "analytics.max_stream_facts", "must be 1..=1000000")?;
        v.check(
            (1..=10_000).contains(&self.facts_per_transaction),
            "analytics.facts_per_transaction",
            "must be 1..=10000",
        )?;
        v.check(
            (1..=100_000).contains(&self.max_products_per_call),
            "analytics.max_products_per_call",
            "must be 1..=100000",
        )?;
        v.check((1..=100_000).contains(&self.revaluation_batch), "analytics.revaluation_batch", "must be 1..=100000")?;
        v.check(
            (1..=60_000).contains(&self.revaluation_idle_poll_ms),
            "analytics.revaluation_idle_poll_ms",
            "must be 1..=60000",
        )?;
        v.check(
            self.rfm_rescore_interval_ms <= 3_600_000,
            "analytics.rfm_rescore_interval_ms",
            "must be at most 3600000",
        )
    }
}
