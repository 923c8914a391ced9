//! The service's SQL, one module per aggregate. Rows are `#[derive(sqlx::FromRow)]`
//! structs; the events a change announces (outbox) and its audit entries
//! (`crm_kit.audit_entry`) are written in the transaction of the change.
//!
//! - [`customers`]: the copy of customer-profile's identification; re-keys facts.
//! - [`catalogue`]: products and FX rates.
//! - [`facts`]: balance snapshots and transactions.
//! - [`rules`]: level rule versions and closed months.
//! - [`revaluation`]: customers due for revaluation, taken by the revaluer.
//! - [`rfm`]: RFM scores, rescored over the whole population.
//! - [`scorecards`]: scorecard versions and scoring customers.
//! - [`scope`]: copies of assignments and the org tree, for data scopes.
//! - [`valuation`]: each customer's value and level history, replayed from its facts.
//! - [`values`]: reading them back.
//! - [`tags`]: tag definitions and the tags customers have, rule tags kept current.
//! - [`segments`]: segment definitions, membership kept current with its history,
//!   and snapshots.
//! - [`analysis`]: analyses over many customers, within the caller's data scope.
//! - [`targets`]: business target trees, their splits, and progress from the facts.

pub mod analysis;
pub mod catalogue;
pub mod customers;
pub mod facts;
pub mod revaluation;
pub mod rfm;
pub mod rules;
pub mod scope;
pub mod scorecards;
pub mod segments;
pub mod tags;
pub mod targets;
pub mod valuation;
pub mod values;

/// The CloudEvents source of the events this service publishes.
pub const EVENT_SOURCE: &str = "crm/analytics";
