//! Level rule versions and closed months: what every replay is decided under.
//!
//! Until the bank stores a version in force from [`START`] (the earliest balance date
//! accepted), the bank default ([`LevelRule::bank_default`]) is in force as version 0
//! from then, so every balance has a rule; stored versions are numbered from 1.

use sqlx::{PgConnection, PgPool};
use time::macros::date;

use crate::domain::calendar::Month;
use crate::domain::levels::{LevelRule, RuleSet};
use crate::error::{Error, Result};

/// The earliest day a balance may have; the rules in force always cover it.
pub const START: time::Date = date!(2000 - 01 - 01);

/// The stored versions, oldest first.
pub async fn stored(pool: impl sqlx::PgExecutor<'_>) -> Result<Vec<LevelRule>> {
    let rules: Vec<(i32, sqlx::types::Json<LevelRule>)> =
        sqlx::query_as("SELECT version, rule FROM level_rule ORDER BY effective_from, version").fetch_all(pool).await?;
    Ok(rules.into_iter().map(|(_, rule)| rule.0).collect())
}

/// The versions in force over time: the stored ones, after the built-in default when
/// none of them applies from the start.
pub fn with_default(mut stored: Vec<LevelRule>) -> Result<RuleSet> {
    if stored.first().is_none_or(|r| r.effective_from > START) {
        stored.insert(0, LevelRule::bank_default(0, START));
    }
    RuleSet::new(stored).map_err(|e| Error::Corrupt(format!("stored level rules: {e}")))
}

/// The rule set in force.
pub async fn rule_set(tx: &mut PgConnection) -> Result<RuleSet> {
    with_default(stored(&mut *tx).await?)
}

/// Stores `rule` after checking it against the stored versions (locks the table so
/// that two versions cannot pass the check together). `Err(Invalid)` names the problem.
pub async fn put(tx: &mut PgConnection, rule: &LevelRule, created_by: &str) -> Result<()> {
    sqlx::query("LOCK TABLE level_rule IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await?;
    let mut versions = stored(&mut *tx).await?;
    if versions.iter().any(|r| r.version == rule.version) {
        return Err(Error::AlreadyExists(format!("level rule version {}", rule.version)));
    }
    versions.push(rule.clone());
    if let Err(e) = RuleSet::new(versions) {
        let mut v = crm_platform::FieldViolations::new();
        v.add("rule", e.to_string());
        return Err(Error::Invalid(v));
    }
    sqlx::query("INSERT INTO level_rule (version, effective_from, rule, created_by) VALUES ($1, $2, $3, $4)")
        .bind(rule.version as i32)
        .bind(rule.effective_from)
        .bind(sqlx::types::Json(rule))
        .bind(created_by)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Closed months, ascending.
pub async fn closed_months(tx: &mut PgConnection) -> Result<Vec<Month>> {
    let months: Vec<String> =
        sqlx::query_scalar("SELECT month FROM closed_month ORDER BY month").fetch_all(&mut *tx).await?;
    months.iter().map(|m| m.parse().map_err(|_| Error::Corrupt(format!("closed month {m:?}")))).collect()
}

/// Closes `month` (no-op when closed). Refuses a month that would leave a gap after
/// the latest closed one.
pub async fn close(tx: &mut PgConnection, month: Month, closed_by: &str) -> Result<()> {
    sqlx::query("LOCK TABLE closed_month IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await?;
    let closed = closed_months(tx).await?;
    if let Some(latest) = closed.last()
        && month > *latest
        && latest.next() != Some(month)
    {
        let mut v = crm_platform::FieldViolations::new();
        v.add(
            "month",
            format!("months close in order: close {} first", latest.next().map_or(String::new(), |m| m.to_string())),
        );
        return Err(Error::Invalid(v));
    }
    sqlx::query("INSERT INTO closed_month (month, closed_by) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(month.to_string())
        .bind(closed_by)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Gives every fact the owner its reference resolves to now (the first step of a full
/// recompute); answers how many moved.
pub async fn reresolve_owners(pool: &PgPool) -> Result<u64> {
    let mut moved = 0;
    for statement in [
        "UPDATE balance_snapshot SET customer_number = fact_owner(ref_customer_number, ref_source_system, ref_source_id)
         WHERE customer_number IS DISTINCT FROM fact_owner(ref_customer_number, ref_source_system, ref_source_id)",
        "UPDATE transaction_fact SET customer_number = fact_owner(ref_customer_number, ref_source_system, ref_source_id)
         WHERE customer_number IS DISTINCT FROM fact_owner(ref_customer_number, ref_source_system, ref_source_id)",
    ] {
        moved += sqlx::query(statement).execute(pool).await?.rows_affected();
    }
    Ok(moved)
}

/// Every customer with a derived value or owned facts, in order.
pub async fn all_customers(pool: &PgPool) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT customer_number FROM customer_value
         UNION SELECT DISTINCT customer_number FROM balance_snapshot WHERE customer_number IS NOT NULL
         UNION SELECT customer_number FROM segment_membership WHERE left_at IS NULL
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await?)
}
