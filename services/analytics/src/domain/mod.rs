//! The service's rules: pure, no I/O, no proto types, unit-tested table by table.
//!
//! - [`aum`], [`balances`], [`calendar`]: asset classes, daily balances, monthly daily
//!   averages.
//! - [`levels`], [`level_decision`]: level rule versions and how each observation moves
//!   a customer's level; [`valuation`] replays a customer's facts through them.
//! - [`facts`]: the facts analytics is fed; [`demographics`]: age, gender, region.
//! - [`expr`]: the tag and segment condition language; [`tags`]: tags, segments and
//!   the attribute catalogue their conditions read; [`membership`]: segment entries,
//!   exits and as-of membership.
//! - [`rfm`], [`scorecard`], [`score`]: RFM codes and scorecards.
//! - [`targets`], [`target_progress`]: business targets and their roll-up.
//! - [`analysis`]: ad-hoc aggregation names, churn windows and figures.

pub mod analysis;
pub mod aum;
pub mod balances;
pub mod calendar;
pub mod demographics;
pub mod expr;
pub mod facts;
pub mod level_decision;
#[cfg(test)]
mod level_practices;
pub mod levels;
pub mod membership;
pub mod rfm;
pub mod score;
pub mod scorecard;
pub mod tags;
pub mod target_progress;
pub mod targets;
pub mod valuation;
