//! Customer value as derived data: each customer's value and level history are the
//! replay ([`crate::domain::valuation::replay`]) of its facts as stored, rewritten
//! whenever its facts, the catalogue, the FX rates, the rules or the closed months
//! change. A level change that the replay finds and the stored history did not have
//! is announced (`LevelChanged`) in the same transaction. Its closed months
//! (`customer_month_value`, what analyses read) are rewritten with the value.

use std::collections::{BTreeMap, BTreeSet};

use crm_proto::crm::analytics::v1 as pb;
use serde_json::{Map, Value};
use sqlx::PgConnection;
use time::Date;

use crate::domain::aum::{AssetClass, ClassAmounts};
use crate::domain::calendar::Month;
use crate::domain::facts::to_cny;
use crate::domain::levels::{LevelChangeKind, RuleSet};
use crate::domain::valuation::{ExplainedChange, Holding, MonthValue, Valuation, replay};
use crate::error::{Error, Result};

/// A balance as the replay reads it.
#[derive(sqlx::FromRow)]
struct BalanceRow {
    customer_number: String,
    account_id: String,
    product_code: String,
    balance_date: Date,
    asset_class: String,
    aum_weight_bp: i32,
    amount_minor: i64,
    currency_code: String,
    cny_per_unit_micros: Option<i64>,
}

/// A stored level change.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LevelChangeRow {
    /// The customer.
    pub customer_number: String,
    /// Level before.
    pub from_level: String,
    /// Level after.
    pub to_level: String,
    /// Up or down.
    #[sqlx(try_from = "String")]
    pub kind: LevelChangeKind,
    /// First day at the new level.
    pub effective_date: Date,
    /// Rule version that decided it.
    pub rule_version: i32,
    /// Why.
    pub explanation: String,
}

impl LevelChangeRow {
    fn of(number: &str, c: &ExplainedChange) -> Self {
        LevelChangeRow {
            customer_number: number.to_string(),
            from_level: c.change.from.clone(),
            to_level: c.change.to.clone(),
            kind: c.change.kind,
            effective_date: c.change.effective,
            rule_version: c.change.rule_version as i32,
            explanation: c.explanation.clone(),
        }
    }
}

/// Recomputes the value, months, level history and rule tags of `customers`
/// (survivors only; absorbed numbers are forgotten) under the rules and closed months
/// as stored; answers the level changes announced. The revaluer calls it for due
/// customers, a full recompute chunk by chunk; both then refresh the customers'
/// segment memberships ([`super::segments::refresh_memberships`]). The RFM population
/// is rescored apart ([`rescore_rfm`]).
pub async fn recompute_values(tx: &mut PgConnection, customers: &BTreeSet<String>) -> Result<u64> {
    let rules = super::rules::rule_set(tx).await?;
    let closed = super::rules::closed_months(tx).await?;
    let numbers: Vec<&str> = customers.iter().map(String::as_str).collect();
    // The customer rows serialise recomputes of one customer; locked in number order,
    // as every batch locks them, so two batches never wait on each other in a cycle.
    let survivors: BTreeSet<String> = sqlx::query_scalar(
        "SELECT customer_number FROM (
             SELECT customer_number, merged_into FROM customer WHERE customer_number = ANY($1)
             ORDER BY customer_number FOR UPDATE) c
         WHERE merged_into IS NULL",
    )
    .bind(&numbers)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let survivor_numbers: Vec<&str> = survivors.iter().map(String::as_str).collect();
    let mut holdings = holdings_of(tx, &survivor_numbers).await?;
    let mut announced = 0;
    for number in customers {
        if survivors.contains(number) {
            let held = holdings.remove(number).unwrap_or_default();
            announced += revalue(tx, number, &held, &rules, &closed).await?;
        } else {
            forget(tx, number).await?;
        }
    }
    super::tags::refresh(tx, customers, &rules).await?;
    Ok(announced)
}

/// Rescores the RFM population and refreshes the rule tags and segment memberships of
/// the customers whose scores changed; answers how many those were. Rescores are
/// serialised by a lock on `customer_rfm` (each rewrites every customer's RFM).
pub async fn rescore_rfm(tx: &mut PgConnection) -> Result<usize> {
    sqlx::query("LOCK TABLE customer_rfm IN EXCLUSIVE MODE").execute(&mut *tx).await?;
    let changed = super::rfm::rescore(tx).await?;
    if !changed.is_empty() {
        let rules = super::rules::rule_set(tx).await?;
        super::tags::refresh(tx, &changed.iter().cloned().collect(), &rules).await?;
        super::segments::refresh_memberships(tx, &changed.iter().cloned().collect()).await?;
    }
    Ok(changed.len())
}

/// Replays one survivor's `holdings` and stores what it finds (or forgets a customer
/// without any); answers the level changes announced.
async fn revalue(
    tx: &mut PgConnection,
    number: &str,
    holdings: &[Holding],
    rules: &RuleSet,
    closed: &[Month],
) -> Result<u64> {
    let valuation = replay(rules, holdings, closed).map_err(|e| Error::Corrupt(format!("customer {number}: {e}")))?;
    let Some(valuation) = valuation else {
        forget(tx, number).await?;
        return Ok(0);
    };
    store_value(tx, number, &valuation).await?;
    store_months(tx, number, &valuation.months).await?;
    store_history(tx, number, &valuation.changes).await
}

/// The holdings in CNY of each of `numbers`, by customer: one per account and product;
/// balances without an FX rate yet are left out. One query for the whole batch.
async fn holdings_of(tx: &mut PgConnection, numbers: &[&str]) -> Result<BTreeMap<String, Vec<Holding>>> {
    let rows: Vec<BalanceRow> = sqlx::query_as(
        "SELECT b.customer_number, b.account_id, b.product_code, b.balance_date, p.asset_class, p.aum_weight_bp,
                b.amount_minor, b.currency_code,
                (SELECT r.cny_per_unit_micros FROM fx_rate r
                 WHERE r.currency_code = b.currency_code AND r.rate_date <= b.balance_date
                 ORDER BY r.rate_date DESC LIMIT 1) AS cny_per_unit_micros
         FROM balance_snapshot b JOIN product p USING (product_code)
         WHERE b.customer_number = ANY($1)
         ORDER BY b.customer_number, b.account_id, b.product_code, b.balance_date",
    )
    .bind(numbers)
    .fetch_all(&mut *tx)
    .await?;
    let mut by_holding: BTreeMap<(String, String, String), Holding> = BTreeMap::new();
    for r in rows {
        let class: AssetClass =
            r.asset_class.parse().map_err(|_| Error::Corrupt(format!("asset class {:?}", r.asset_class)))?;
        let currency = crm_platform::convert::Currency::parse(&r.currency_code)
            .ok_or_else(|| Error::Corrupt(format!("currency {:?}", r.currency_code)))?;
        let money = crm_platform::convert::Money { amount_minor: r.amount_minor, currency };
        let Some(cny) = to_cny(money, r.cny_per_unit_micros) else { continue };
        by_holding
            .entry((r.customer_number, r.account_id, r.product_code))
            .or_insert_with(|| Holding { class, weight_bp: r.aum_weight_bp, balances: Vec::new() })
            .balances
            .push((r.balance_date, cny));
    }
    let mut by_customer: BTreeMap<String, Vec<Holding>> = BTreeMap::new();
    for ((number, _, _), holding) in by_holding {
        by_customer.entry(number).or_default().push(holding);
    }
    Ok(by_customer)
}

fn class_json(amounts: &ClassAmounts) -> Value {
    Value::Object(amounts.iter().map(|(c, a)| (c.as_str().to_string(), Value::from(a))).collect::<Map<_, _>>())
}

async fn store_value(tx: &mut PgConnection, number: &str, v: &Valuation) -> Result<()> {
    let empty = ClassAmounts::new();
    let month = v.latest_month.as_ref();
    sqlx::query(
        "INSERT INTO customer_value (customer_number, level_code, level_since, watch_months, as_of, aum, month_aum,
                                     weighted_aum, month_weighted_aum, latest_closed_month, computed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now())
         ON CONFLICT (customer_number) DO UPDATE SET
             level_code = EXCLUDED.level_code, level_since = EXCLUDED.level_since,
             watch_months = EXCLUDED.watch_months, as_of = EXCLUDED.as_of, aum = EXCLUDED.aum,
             month_aum = EXCLUDED.month_aum, weighted_aum = EXCLUDED.weighted_aum,
             month_weighted_aum = EXCLUDED.month_weighted_aum,
             latest_closed_month = EXCLUDED.latest_closed_month, computed_at = now()",
    )
    .bind(number)
    .bind(&v.state.level)
    .bind(v.state.since)
    .bind(v.state.watch.as_ref().map_or(0, |w| w.months_below() as i32))
    .bind(v.as_of)
    .bind(class_json(&v.by_class))
    .bind(class_json(month.map_or(&empty, |m| &m.by_class)))
    .bind(v.weighted)
    .bind(month.map_or(0, |m| m.weighted))
    .bind(month.map(|m| m.month.to_string()))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A stored closed month, as compared with a replayed one.
type MonthRow = (String, i64, i64, i64, i64, i64, i64, i64, String);

fn month_row(m: &MonthValue) -> MonthRow {
    let c = |class| m.by_class.get(class);
    (
        m.month.to_string(),
        c(AssetClass::Deposit),
        c(AssetClass::WealthManagement),
        c(AssetClass::Settlement),
        c(AssetClass::Loan),
        c(AssetClass::ChannelProduct),
        m.by_class.aum_total(),
        m.weighted,
        m.level_at_end.clone(),
    )
}

/// Replaces the customer's closed months with `months` (nothing is written when they
/// are stored already: most facts fall in the open month).
async fn store_months(tx: &mut PgConnection, number: &str, months: &[MonthValue]) -> Result<()> {
    let stored: Vec<MonthRow> = sqlx::query_as(
        "SELECT month, deposit, wealth_management, settlement, loan, channel_product, aum_total, weighted_aum,
                level_code
         FROM customer_month_value WHERE customer_number = $1 ORDER BY month",
    )
    .bind(number)
    .fetch_all(&mut *tx)
    .await?;
    if stored == months.iter().map(month_row).collect::<Vec<_>>() {
        return Ok(());
    }
    sqlx::query("DELETE FROM customer_month_value WHERE customer_number = $1").bind(number).execute(&mut *tx).await?;
    if months.is_empty() {
        return Ok(());
    }
    let class = |c: AssetClass| months.iter().map(|m| m.by_class.get(c)).collect::<Vec<i64>>();
    sqlx::query(
        "INSERT INTO customer_month_value (customer_number, month, deposit, wealth_management, settlement, loan,
                                          channel_product, aum_total, weighted_aum, level_code)
         SELECT $1, * FROM UNNEST($2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[], $6::BIGINT[], $7::BIGINT[],
                                  $8::BIGINT[], $9::BIGINT[], $10::TEXT[])",
    )
    .bind(number)
    .bind(months.iter().map(|m| m.month.to_string()).collect::<Vec<_>>())
    .bind(class(AssetClass::Deposit))
    .bind(class(AssetClass::WealthManagement))
    .bind(class(AssetClass::Settlement))
    .bind(class(AssetClass::Loan))
    .bind(class(AssetClass::ChannelProduct))
    .bind(months.iter().map(|m| m.by_class.aum_total()).collect::<Vec<_>>())
    .bind(months.iter().map(|m| m.weighted).collect::<Vec<_>>())
    .bind(months.iter().map(|m| m.level_at_end.clone()).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Replaces the stored history with `changes`; announces those not stored before.
async fn store_history(tx: &mut PgConnection, number: &str, changes: &[ExplainedChange]) -> Result<u64> {
    let before = history(&mut *tx, number).await?;
    let after: Vec<LevelChangeRow> = changes.iter().map(|c| LevelChangeRow::of(number, c)).collect();
    if before == after {
        return Ok(0);
    }
    sqlx::query("DELETE FROM level_change WHERE customer_number = $1").bind(number).execute(&mut *tx).await?;
    let mut announced = 0;
    for (seq, row) in after.iter().enumerate() {
        sqlx::query(
            "INSERT INTO level_change (customer_number, seq, from_level, to_level, kind, effective_date, rule_version,
                                       explanation)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(number)
        .bind(seq as i32)
        .bind(&row.from_level)
        .bind(&row.to_level)
        .bind(row.kind.as_str())
        .bind(row.effective_date)
        .bind(row.rule_version)
        .bind(&row.explanation)
        .execute(&mut *tx)
        .await?;
        let known = before.iter().any(|b| {
            (&b.from_level, &b.to_level, b.kind, b.effective_date, b.rule_version)
                == (&row.from_level, &row.to_level, row.kind, row.effective_date, row.rule_version)
        });
        if !known {
            let event = pb::LevelChanged { change: Some(row.into()) };
            crm_platform::messaging::write_event(&mut *tx, super::EVENT_SOURCE, number, &event, None).await?;
            announced += 1;
        }
    }
    Ok(announced)
}

/// A customer's stored level changes, in decision order.
pub async fn history(pool: impl sqlx::PgExecutor<'_>, number: &str) -> Result<Vec<LevelChangeRow>> {
    Ok(sqlx::query_as(
        "SELECT customer_number, from_level, to_level, kind, effective_date, rule_version, explanation
         FROM level_change WHERE customer_number = $1 ORDER BY seq",
    )
    .bind(number)
    .fetch_all(pool)
    .await?)
}

/// Drops the derived value, closed months and history of `number` (absorbed, or
/// without balances).
pub async fn forget(tx: &mut PgConnection, number: &str) -> Result<()> {
    sqlx::query("DELETE FROM customer_value WHERE customer_number = $1").bind(number).execute(&mut *tx).await?;
    sqlx::query("DELETE FROM customer_month_value WHERE customer_number = $1").bind(number).execute(&mut *tx).await?;
    sqlx::query("DELETE FROM level_change WHERE customer_number = $1").bind(number).execute(&mut *tx).await?;
    Ok(())
}

impl From<&LevelChangeRow> for pb::LevelChange {
    fn from(r: &LevelChangeRow) -> Self {
        pb::LevelChange {
            customer_number: r.customer_number.clone(),
            from_level: r.from_level.clone(),
            to_level: r.to_level.clone(),
            kind: match r.kind {
                LevelChangeKind::Upgrade => pb::LevelChangeKind::Upgrade,
                LevelChangeKind::Downgrade => pb::LevelChangeKind::Downgrade,
            } as i32,
            effective_date: Some(crm_platform::convert::date(r.effective_date)),
            rule_version: r.rule_version,
            explanation: r.explanation.clone(),
        }
    }
}
