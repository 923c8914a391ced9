//! Analyses over many customers, each filtered by the caller's data scope in SQL
//! (`customer_visible`, as [`super::scope::visible`] for one customer): AUM by org
//! subtree × level × asset class, the level migration matrix, churn signals, RM
//! performance and ad-hoc aggregations. They read the derived data only
//! (`customer_value`, `customer_month_value`, `level_change`, `customer_tag`) and the
//! facts for point-in-time balances and transactions; nothing is written.
//!
//! The SQL is fixed: the long queries are files under `sql/`; an aggregation's
//! dimension and measure are enums each mapped to a fixed fragment here
//! ([`dimension_sql`], [`measure_sql`]), never text from the request.

use crm_platform::auth::Visibility;
use sqlx::PgPool;
use time::{Date, OffsetDateTime};

use crate::domain::analysis::{Aggregation, GroupBy, Measure};
use crate::domain::aum::{AssetClass, ClassAmounts};
use crate::domain::calendar::Month;
use crate::domain::tags::{CustomerAttribute, RfmMeasure};
use crate::error::{Error, Result};

/// The most groups an aggregation answers.
pub const MAX_GROUPS: usize = 10_000;

/// Where an AUM breakdown is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AumAt {
    /// Balances at the end of a day.
    Day(Date),
    /// A closed month's daily averages.
    Month(Month),
}

/// The org whose children group an AUM breakdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgRoot {
    /// Its id; "" for the whole tree.
    pub org_id: String,
    /// Its materialised path; "/" for the whole tree.
    pub path: String,
}

impl OrgRoot {
    /// The whole org tree (its top orgs are the groups).
    pub fn whole_tree() -> Self {
        OrgRoot { org_id: String::new(), path: "/".into() }
    }
}

/// One group of an AUM breakdown.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AumGroup {
    /// The child org (or the root itself).
    pub org_id: String,
    /// The level.
    pub level_code: String,
    /// Customers in the group.
    pub customer_count: i64,
    deposit: i64,
    wealth_management: i64,
    settlement: i64,
    loan: i64,
    channel_product: i64,
    /// The AUM classes summed, unweighted.
    pub aum_total: i64,
}

impl AumGroup {
    /// The amounts per asset class.
    pub fn by_class(&self) -> ClassAmounts {
        let mut amounts = ClassAmounts::new();
        for (class, amount) in [
            (AssetClass::Deposit, self.deposit),
            (AssetClass::WealthManagement, self.wealth_management),
            (AssetClass::Settlement, self.settlement),
            (AssetClass::Loan, self.loan),
            (AssetClass::ChannelProduct, self.channel_product),
        ] {
            amounts.add(class, amount);
        }
        amounts
    }
}

/// One cell of a level migration matrix.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MigrationCell {
    /// The level at the end of the first month; "" before the first balance.
    pub from_level: String,
    /// The level at the end of the second.
    pub to_level: String,
    /// Customers.
    pub customer_count: i64,
}

/// A customer with a churn signal.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ChurnRow {
    /// The customer.
    pub customer_number: String,
    /// AUM decline: the first month's weighted daily average.
    pub start_aum: Option<i64>,
    /// AUM decline: the reference month's.
    pub end_aum: Option<i64>,
    /// No transactions: the latest transaction before the window.
    pub last_transaction_at: Option<OffsetDateTime>,
}

/// One RM's figures.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RmRow {
    /// The RM; "" for customers without a primary RM.
    pub rm_id: String,
    /// Customers with a balance by the end of the period.
    pub customer_count: i64,
    /// Their weighted daily averages of the first month.
    pub start_aum: i64,
    /// Of the last month.
    pub end_aum: i64,
    /// Upgrades effective in the period.
    pub upgrades: i64,
    /// Downgrades effective in the period.
    pub downgrades: i64,
}

/// One group of an aggregation: a text key or a number key (`None` both: no value).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct GroupRow {
    /// The key of a text dimension.
    pub key_text: Option<String>,
    /// The key of a number dimension (the bucket's lower bound).
    pub key_number: Option<i64>,
    /// Customers in the group.
    pub customer_count: i64,
    /// The measure.
    pub value: i64,
}

/// The org `org_id` as the copy of the org tree knows it, or NOT_FOUND.
pub async fn org(pool: &PgPool, org_id: &str) -> Result<OrgRoot> {
    let path: Option<String> = sqlx::query_scalar("SELECT path FROM org_directory WHERE org_id = $1")
        .bind(org_id)
        .fetch_optional(pool)
        .await?;
    let path = path.ok_or_else(|| Error::NotFound(format!("org {org_id}")))?;
    Ok(OrgRoot { org_id: org_id.to_string(), path })
}

/// Whether `month` is closed.
pub async fn is_closed(pool: &PgPool, month: Month) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM closed_month WHERE month = $1)")
        .bind(month.to_string())
        .fetch_one(pool)
        .await?)
}

/// The latest closed month, if any.
pub async fn latest_closed(pool: &PgPool) -> Result<Option<Month>> {
    let month: Option<String> = sqlx::query_scalar("SELECT max(month) FROM closed_month").fetch_one(pool).await?;
    month.map(|m| m.parse().map_err(|_| Error::Corrupt(format!("closed month {m:?}")))).transpose()
}

/// FAILED_PRECONDITION unless every month of `months` is closed.
pub async fn require_closed(pool: &PgPool, months: &[Month]) -> Result<()> {
    for &month in months {
        if !is_closed(pool, month).await? {
            return Err(Error::Precondition(format!("month {month} is not closed")));
        }
    }
    Ok(())
}

/// AUM of the customers visible in `visibility` by child org of `root` × level ×
/// asset class, at `at` (a month must be closed: the caller checks).
pub async fn aum_by_org(pool: &PgPool, root: &OrgRoot, at: AumAt, visibility: &Visibility) -> Result<Vec<AumGroup>> {
    let (scope, arg) = visibility.sql_args();
    let (month, day) = match at {
        AumAt::Day(day) => (None, Some(day)),
        AumAt::Month(month) => (Some(month.to_string()), None),
    };
    Ok(sqlx::query_as(include_str!("sql/aum_by_org.sql"))
        .bind(&root.org_id)
        .bind(&root.path)
        .bind(month)
        .bind(scope)
        .bind(arg)
        .bind(day)
        .fetch_all(pool)
        .await?)
}

/// The level migration matrix of visible customers from the end of `from` to the end
/// of `to`.
pub async fn level_migration(
    pool: &PgPool,
    from: Month,
    to: Month,
    visibility: &Visibility,
) -> Result<Vec<MigrationCell>> {
    let (scope, arg) = visibility.sql_args();
    Ok(sqlx::query_as(include_str!("sql/level_migration.sql"))
        .bind(from.last_day())
        .bind(to.last_day())
        .bind(scope)
        .bind(arg)
        .fetch_all(pool)
        .await?)
}

/// A page of visible customers whose weighted daily average fell by more than
/// `percent` % from `start` to `end`.
pub async fn aum_declines(
    pool: &PgPool,
    (start, end): (Month, Month),
    percent: u32,
    visibility: &Visibility,
    (limit, offset): (i64, i64),
) -> Result<Vec<ChurnRow>> {
    let (scope, arg) = visibility.sql_args();
    Ok(sqlx::query_as(include_str!("sql/churn_aum_decline.sql"))
        .bind(start.to_string())
        .bind(end.to_string())
        .bind(i64::from(percent))
        .bind(scope)
        .bind(arg)
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await?)
}

/// A page of visible customers with a balance before `first` and no transaction from
/// `first` to `last`.
pub async fn quiet_customers(
    pool: &PgPool,
    (first, last): (Date, Date),
    visibility: &Visibility,
    (limit, offset): (i64, i64),
) -> Result<Vec<ChurnRow>> {
    let (scope, arg) = visibility.sql_args();
    Ok(sqlx::query_as(include_str!("sql/churn_no_transactions.sql"))
        .bind(first)
        .bind(last)
        .bind(scope)
        .bind(arg)
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await?)
}

/// Per primary RM, the figures of the visible customers over the months `from` to `to`.
pub async fn rm_performance(pool: &PgPool, from: Month, to: Month, visibility: &Visibility) -> Result<Vec<RmRow>> {
    let (scope, arg) = visibility.sql_args();
    Ok(sqlx::query_as(include_str!("sql/rm_performance.sql"))
        .bind(from.to_string())
        .bind(to.to_string())
        .bind(from.first_day())
        .bind(to.last_day())
        .bind(scope)
        .bind(arg)
        .fetch_all(pool)
        .await?)
}

/// An attribute's SQL over the attribute rows `a` (customer_attributes.sql).
enum AttributeSql {
    /// A text key (the level code, gender, region).
    Text(&'static str),
    /// A number.
    Number(&'static str),
}

fn attribute_sql(attribute: CustomerAttribute) -> AttributeSql {
    use AttributeSql::{Number, Text};
    match attribute {
        CustomerAttribute::Level => Text("a.level_code"),
        CustomerAttribute::Gender => Text("COALESCE(a.gender, '')"),
        CustomerAttribute::Region => Text("COALESCE(a.region_code, '')"),
        CustomerAttribute::WatchMonths => Number("a.watch_months::BIGINT"),
        CustomerAttribute::AumTotal => Number("a.weighted_aum"),
        CustomerAttribute::Aum(AssetClass::Deposit) => Number("COALESCE((a.aum ->> 'deposit')::BIGINT, 0)"),
        CustomerAttribute::Aum(AssetClass::WealthManagement) => {
            Number("COALESCE((a.aum ->> 'wealth_management')::BIGINT, 0)")
        }
        CustomerAttribute::Aum(AssetClass::Settlement) => Number("COALESCE((a.aum ->> 'settlement')::BIGINT, 0)"),
        CustomerAttribute::Aum(AssetClass::Loan) => Number("COALESCE((a.aum ->> 'loan')::BIGINT, 0)"),
        CustomerAttribute::Aum(AssetClass::ChannelProduct) => {
            Number("COALESCE((a.aum ->> 'channel_product')::BIGINT, 0)")
        }
        CustomerAttribute::AumMonthTotal => {
            Number("(CASE WHEN a.latest_closed_month IS NULL THEN NULL ELSE a.month_weighted_aum END)")
        }
        CustomerAttribute::TxnCount90d => Number("a.txn_count"),
        CustomerAttribute::TxnAmount90d => Number("a.txn_amount"),
        CustomerAttribute::Rfm(RfmMeasure::R) => Number("a.rfm_r::BIGINT"),
        CustomerAttribute::Rfm(RfmMeasure::F) => Number("a.rfm_f::BIGINT"),
        CustomerAttribute::Rfm(RfmMeasure::M) => Number("a.rfm_m::BIGINT"),
        CustomerAttribute::RfmCode => Number("(a.rfm_r * 100 + a.rfm_f * 10 + a.rfm_m)::BIGINT"),
        // As domain::demographics::age_on: whole years, a 29 February birthday on 1 March.
        CustomerAttribute::Age => Number("date_part('year', age(a.as_of, a.birth_date))::BIGINT"),
    }
}

/// The SQL of a number attribute; `None` for a text one.
fn number_sql(attribute: CustomerAttribute) -> Option<&'static str> {
    match attribute_sql(attribute) {
        AttributeSql::Number(sql) => Some(sql),
        AttributeSql::Text(_) => None,
    }
}

/// The dimension's fixed SQL: (text key, number key before bucketing, extra join).
fn dimension_sql(group_by: GroupBy) -> (&'static str, Option<&'static str>, &'static str) {
    const NO_JOIN: &str = "";
    match group_by {
        GroupBy::Org => ("COALESCE(s.home_org_id, '')", None, NO_JOIN),
        GroupBy::Tag => (
            "COALESCE(t.tag_code, '')",
            None,
            "LEFT JOIN (SELECT DISTINCT customer_number, tag_code FROM customer_tag) t
                 ON t.customer_number = a.customer_number",
        ),
        GroupBy::Attribute(attribute) => match attribute_sql(attribute) {
            AttributeSql::Text(text) => (text, None, NO_JOIN),
            AttributeSql::Number(number) => ("NULL::TEXT", Some(number), NO_JOIN),
        },
    }
}

/// The measure's fixed SQL (an aggregate).
fn measure_sql(measure: Measure) -> String {
    // A sum of the level is refused when the measure is parsed; it would count.
    match measure {
        Measure::Sum(attribute) => number_sql(attribute)
            .map_or_else(|| "count(*)::BIGINT".to_string(), |number| format!("COALESCE(sum({number}), 0)::BIGINT")),
        Measure::Count => "count(*)::BIGINT".to_string(),
    }
}

/// The groups of an aggregation over the visible valued customers, at most
/// [`MAX_GROUPS`] + 1 (the caller refuses more than [`MAX_GROUPS`]). The query is put
/// together from fixed fragments only.
pub async fn aggregate(pool: &PgPool, aggregation: &Aggregation, visibility: &Visibility) -> Result<Vec<GroupRow>> {
    let (text, number, join) = dimension_sql(aggregation.group_by);
    let number = match number {
        Some(number) => {
            format!("(CASE WHEN $4::BIGINT > 0 THEN (floor(({number})::NUMERIC / $4) * $4)::BIGINT ELSE {number} END)")
        }
        None => "NULL::BIGINT".to_string(),
    };
    let sql = format!(
        "WITH a AS ({attributes})
         SELECT {text} AS key_text, {number} AS key_number, count(*)::BIGINT AS customer_count,
                {measure} AS value
         FROM a
         LEFT JOIN customer_assignment s ON s.customer_number = a.customer_number
         {join}
         WHERE customer_visible(a.customer_number, $2, $3)
         GROUP BY 1, 2
         ORDER BY 2 NULLS FIRST, 1
         LIMIT {limit}",
        attributes = include_str!("sql/customer_attributes.sql"),
        measure = measure_sql(aggregation.measure),
        limit = MAX_GROUPS + 1,
    );
    let (scope, arg) = visibility.sql_args();
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(None::<Vec<String>>)
        .bind(scope)
        .bind(arg)
        .bind(aggregation.bucket_width.unwrap_or(0))
        .fetch_all(pool)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::expr::ValueKind;

    #[test]
    fn every_number_attribute_has_a_number_fragment_and_every_other_a_text_one() {
        for attribute in CustomerAttribute::ALL {
            let (text, number, _) = dimension_sql(GroupBy::Attribute(attribute));
            if attribute.kind() == ValueKind::Number {
                assert!(number.is_some() && text == "NULL::TEXT", "{}", attribute.name());
            } else {
                assert!(number.is_none() && text != "NULL::TEXT", "{}", attribute.name());
            }
        }
        assert_eq!(measure_sql(Measure::Count), "count(*)::BIGINT");
        assert_eq!(measure_sql(Measure::Sum(CustomerAttribute::AumTotal)), "COALESCE(sum(a.weighted_aum), 0)::BIGINT");
    }
}
