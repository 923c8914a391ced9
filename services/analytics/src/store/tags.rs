//! Tags: their definitions and which customers have them (`customer_tag`).
//!
//! Rule tags are derived data, like a customer's value: [`refresh`] re-evaluates every
//! rule tag of a batch of customers from their stored values and transactions (called
//! by [`super::valuation::recompute_values`] after the values are stored, and by the
//! RFM rescore for the customers whose scores moved, so they are current whenever the
//! value is), and [`define`] re-evaluates a (re)defined rule tag for every
//! customer in the transaction that stores it. A customer's rule tags go with its
//! value, and an absorbed customer keeps no tags at all (triggers in
//! `0002_tags_segments.sql`), so the incremental path and a full recompute leave the
//! same rows (`since` aside: it is when analytics found the tag). Manual tags are
//! staff's and change only through [`set_manual`] and [`remove_manual`].
//!
//! A definition and the recomputes running beside it cannot miss each other: [`define`]
//! locks `tag_definition` EXCLUSIVE, [`refresh`] ROW SHARE before it reads the rules
//! (a table lock, no row written), so a recompute either finishes before the new rule
//! is evaluated for everyone or reads the new rule. A rare deadlock between the two is
//! possible (PostgreSQL ends one; the caller retries, as for any deadlock). A
//! (re)definition evaluates every valued customer in its own transaction: seconds per
//! 100,000 customers, during which recomputes wait.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

use super::values::ValueRow;
use crate::domain::demographics::Demographics;
use crate::domain::expr::{Expr, parse};
use crate::domain::levels::RuleSet;
use crate::domain::rfm::Rfm;
use crate::domain::tags::{Code, CustomerAttributes, TagDefinition, TagKind, TagSource};
use crate::error::{Error, Result};

/// A stored tag definition.
#[derive(sqlx::FromRow)]
struct DefinitionRow {
    tag_code: String,
    name: String,
    kind: String,
    rule: Option<String>,
    version: i32,
}

impl TryFrom<DefinitionRow> for TagDefinition {
    type Error = Error;

    fn try_from(r: DefinitionRow) -> Result<Self> {
        let corrupt = |what: String| Error::Corrupt(format!("tag {}: {what}", r.tag_code));
        let kind = match (r.kind.as_str(), &r.rule) {
            ("rule", Some(rule)) => TagKind::Rule(parse(rule).map_err(|e| corrupt(format!("rule: {e}")))?),
            ("manual", None) => TagKind::Manual,
            (kind, _) => return Err(corrupt(format!("kind {kind:?}"))),
        };
        Ok(TagDefinition {
            code: r.tag_code.parse().map_err(|e: &str| corrupt(e.to_string()))?,
            name: r.name,
            kind,
            version: u32::try_from(r.version).map_err(|_| corrupt(format!("version {}", r.version)))?,
        })
    }
}

/// A customer's value and transaction figures, as conditions read them.
#[derive(sqlx::FromRow)]
struct AttributeRow {
    #[sqlx(flatten)]
    value: ValueRow,
    txn_count: i64,
    txn_amount: i64,
    rfm_r: Option<i16>,
    rfm_f: Option<i16>,
    rfm_m: Option<i16>,
    birth_date: Option<time::Date>,
    gender: Option<String>,
    region_code: Option<String>,
}

/// A tag a customer has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerTag {
    /// The tag.
    pub code: String,
    /// Its name.
    pub name: String,
    /// Rule or manual.
    pub source: TagSource,
    /// When it was found or set.
    pub since: OffsetDateTime,
}

/// Every tag, by code.
pub async fn definitions(pool: impl sqlx::PgExecutor<'_>) -> Result<Vec<TagDefinition>> {
    let rows: Vec<DefinitionRow> =
        sqlx::query_as("SELECT tag_code, name, kind, rule, version FROM tag_definition ORDER BY tag_code")
            .fetch_all(pool)
            .await?;
    rows.into_iter().map(TagDefinition::try_from).collect()
}

/// The tag `code`, or NOT_FOUND.
pub async fn definition(pool: impl sqlx::PgExecutor<'_>, code: &Code) -> Result<TagDefinition> {
    let row: Option<DefinitionRow> =
        sqlx::query_as("SELECT tag_code, name, kind, rule, version FROM tag_definition WHERE tag_code = $1")
            .bind(code.as_str())
            .fetch_optional(pool)
            .await?;
    row.ok_or_else(|| Error::NotFound(format!("tag {code}")))?.try_into()
}

/// Stores `tag` as the next version of its code and, for a rule tag, evaluates it for
/// every customer; drops the rows of the other source. Answers the stored definition.
pub async fn define(tx: &mut PgConnection, tag: &TagDefinition, defined_by: &str) -> Result<TagDefinition> {
    let (kind, rule, dropped) = match &tag.kind {
        TagKind::Rule(expr) => (TagSource::Rule, Some(expr.to_string()), TagSource::Manual),
        TagKind::Manual => (TagSource::Manual, None, TagSource::Rule),
    };
    sqlx::query("LOCK TABLE tag_definition IN EXCLUSIVE MODE").execute(&mut *tx).await?;
    let version: i32 = sqlx::query_scalar(
        "INSERT INTO tag_definition (tag_code, name, kind, rule, version, defined_by)
         VALUES ($1, $2, $3, $4, 1, $5)
         ON CONFLICT (tag_code) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind, rule = EXCLUDED.rule,
             version = tag_definition.version + 1, defined_by = EXCLUDED.defined_by, defined_at = now()
         RETURNING version",
    )
    .bind(tag.code.as_str())
    .bind(&tag.name)
    .bind(kind.as_str())
    .bind(&rule)
    .bind(defined_by)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM customer_tag WHERE tag_code = $1 AND source = $2")
        .bind(tag.code.as_str())
        .bind(dropped.as_str())
        .execute(&mut *tx)
        .await?;
    if let TagKind::Rule(expr) = &tag.kind {
        let rules = super::rules::rule_set(tx).await?;
        let holders: Vec<String> = attributes(&mut *tx, None)
            .await?
            .into_iter()
            .filter(|(_, a)| expr.eval(a, &level_order(&rules, a)))
            .map(|(number, _)| number)
            .collect();
        sqlx::query(
            "DELETE FROM customer_tag WHERE tag_code = $1 AND source = 'rule' AND NOT customer_number = ANY($2)",
        )
        .bind(tag.code.as_str())
        .bind(&holders)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO customer_tag (customer_number, tag_code, source)
             SELECT n, $1, 'rule' FROM UNNEST($2::TEXT[]) AS n ON CONFLICT DO NOTHING",
        )
        .bind(tag.code.as_str())
        .bind(&holders)
        .execute(&mut *tx)
        .await?;
    }
    Ok(TagDefinition { version: version as u32, ..tag.clone() })
}

/// Re-evaluates every rule tag of `customers` from their stored values (none for a
/// customer without one), set-based: one read of the definitions and the attributes,
/// one delete and one insert for the whole batch.
pub async fn refresh(tx: &mut PgConnection, customers: &BTreeSet<String>, rules: &RuleSet) -> Result<()> {
    if customers.is_empty() {
        return Ok(());
    }
    sqlx::query("LOCK TABLE tag_definition IN ROW SHARE MODE").execute(&mut *tx).await?;
    let rule_tags: Vec<(Code, Expr)> = definitions(&mut *tx)
        .await?
        .into_iter()
        .filter_map(|d| match d.kind {
            TagKind::Rule(expr) => Some((d.code, expr)),
            TagKind::Manual => None,
        })
        .collect();
    let numbers: Vec<String> = customers.iter().cloned().collect();
    let (mut held_by, mut held_tag) = (Vec::new(), Vec::new());
    if !rule_tags.is_empty() {
        for (number, a) in attributes_of(&mut *tx, &numbers).await? {
            let levels = level_order(rules, &a);
            for (code, _) in rule_tags.iter().filter(|(_, e)| e.eval(&a, &levels)) {
                held_by.push(number.clone());
                held_tag.push(code.as_str().to_string());
            }
        }
    }
    sqlx::query(
        "DELETE FROM customer_tag t WHERE t.customer_number = ANY($1) AND t.source = 'rule'
           AND NOT EXISTS (SELECT 1 FROM UNNEST($2::TEXT[], $3::TEXT[]) AS h(customer_number, tag_code)
                           WHERE h.customer_number = t.customer_number AND h.tag_code = t.tag_code)",
    )
    .bind(&numbers)
    .bind(&held_by)
    .bind(&held_tag)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO customer_tag (customer_number, tag_code, source)
         SELECT n, c, 'rule' FROM UNNEST($1::TEXT[], $2::TEXT[]) AS h(n, c) ORDER BY n, c ON CONFLICT DO NOTHING",
    )
    .bind(&held_by)
    .bind(&held_tag)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The level codes, lowest first, of the rule in force on the customer's latest
/// balance date (the latest rule when it has none).
pub fn level_order(rules: &RuleSet, customer: &CustomerAttributes) -> Vec<String> {
    let rule = customer.as_of.and_then(|d| rules.rule_on(d)).or_else(|| rules.versions().last());
    rule.map(|r| r.levels.iter().map(|l| l.code.clone()).collect()).unwrap_or_default()
}

/// The attributes of customer `number` (or of every valued customer), by number;
/// without tags.
pub async fn attributes(
    tx: impl sqlx::PgExecutor<'_>,
    number: Option<&str>,
) -> Result<Vec<(String, CustomerAttributes)>> {
    read_attributes(tx, number.map(|n| vec![n.to_string()])).await
}

/// The attributes of those of `numbers` that have a value, by number; without tags.
pub async fn attributes_of(
    tx: impl sqlx::PgExecutor<'_>,
    numbers: &[String],
) -> Result<Vec<(String, CustomerAttributes)>> {
    read_attributes(tx, Some(numbers.to_vec())).await
}

async fn read_attributes(
    tx: impl sqlx::PgExecutor<'_>,
    numbers: Option<Vec<String>>,
) -> Result<Vec<(String, CustomerAttributes)>> {
    let rows: Vec<AttributeRow> =
        sqlx::query_as(include_str!("sql/customer_attributes.sql")).bind(numbers).fetch_all(tx).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let v = r.value;
            let attributes = CustomerAttributes {
                level: v.level_code.clone(),
                watch_months: i64::from(v.watch_months),
                aum_total: v.weighted_aum,
                aum_by_class: v.by_class().into_iter().map(|(c, now, _)| (c, now)).collect(),
                aum_month_total: v.latest_closed_month.as_ref().map(|_| v.month_weighted_aum),
                txn_count_90d: r.txn_count,
                txn_amount_90d: r.txn_amount,
                rfm: match (r.rfm_r, r.rfm_f, r.rfm_m) {
                    (Some(r), Some(f), Some(m)) => Some(Rfm { r: r as u8, f: f as u8, m: m as u8 }),
                    _ => None,
                },
                demographics: Demographics {
                    birth_date: r.birth_date,
                    gender: r.gender.as_deref().and_then(|g| g.parse().ok()),
                    region: r.region_code.as_deref().and_then(|c| c.parse().ok()),
                },
                as_of: v.as_of,
                tags: BTreeSet::new(),
            };
            (v.customer_number, attributes)
        })
        .collect())
}

/// Every customer's tags (rule and manual), by customer.
pub async fn all_customer_tags(tx: impl sqlx::PgExecutor<'_>) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT customer_number, tag_code FROM customer_tag").fetch_all(tx).await?;
    let mut by_customer: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (number, code) in rows {
        by_customer.entry(number).or_default().insert(code);
    }
    Ok(by_customer)
}

/// The tags (rule and manual) of those of `numbers` that have any, by customer.
pub async fn tags_of(tx: impl sqlx::PgExecutor<'_>, numbers: &[String]) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT customer_number, tag_code FROM customer_tag WHERE customer_number = ANY($1)")
            .bind(numbers)
            .fetch_all(tx)
            .await?;
    let mut by_customer: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (number, code) in rows {
        by_customer.entry(number).or_default().insert(code);
    }
    Ok(by_customer)
}

/// The survivor of `number`, or NOT_FOUND.
pub async fn survivor(pool: impl sqlx::PgExecutor<'_>, number: &str) -> Result<String> {
    sqlx::query_scalar::<_, Option<String>>("SELECT surviving_customer($1)")
        .bind(number)
        .fetch_one(pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("customer {number}")))
}

/// The manual tag `code`, or NOT_FOUND / FAILED_PRECONDITION.
async fn manual(tx: &mut PgConnection, code: &Code) -> Result<()> {
    match definition(&mut *tx, code).await?.kind {
        TagKind::Manual => Ok(()),
        TagKind::Rule(_) => Err(Error::Precondition(format!("tag {code} is given by its rule, not by staff"))),
    }
}

/// Gives the survivor of `number` the manual tag `code` (its segment memberships
/// refreshed); whether it changed anything.
pub async fn set_manual(tx: &mut PgConnection, number: &str, code: &Code, set_by: &str) -> Result<(String, bool)> {
    let survivor = survivor(&mut *tx, number).await?;
    manual(tx, code).await?;
    let inserted = sqlx::query(
        "INSERT INTO customer_tag (customer_number, tag_code, source, set_by) VALUES ($1, $2, 'manual', $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(&survivor)
    .bind(code.as_str())
    .bind(set_by)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted > 0 {
        super::segments::refresh_memberships(tx, &BTreeSet::from([survivor.clone()])).await?;
    }
    Ok((survivor, inserted > 0))
}

/// Takes the manual tag `code` off the survivor of `number` (its segment memberships
/// refreshed); whether it had it.
pub async fn remove_manual(tx: &mut PgConnection, number: &str, code: &Code) -> Result<(String, bool)> {
    let survivor = survivor(&mut *tx, number).await?;
    manual(tx, code).await?;
    let deleted =
        sqlx::query("DELETE FROM customer_tag WHERE customer_number = $1 AND tag_code = $2 AND source = 'manual'")
            .bind(&survivor)
            .bind(code.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
    if deleted > 0 {
        super::segments::refresh_memberships(tx, &BTreeSet::from([survivor.clone()])).await?;
    }
    Ok((survivor, deleted > 0))
}

/// The tags of the survivor of `number`, by code, and the survivor's number.
pub async fn customer_tags(pool: &PgPool, number: &str) -> Result<(String, Vec<CustomerTag>)> {
    let survivor = survivor(pool, number).await?;
    let rows: Vec<(String, String, String, OffsetDateTime)> = sqlx::query_as(
        "SELECT t.tag_code, d.name, t.source, t.since FROM customer_tag t JOIN tag_definition d USING (tag_code)
         WHERE t.customer_number = $1 ORDER BY t.tag_code, t.source",
    )
    .bind(&survivor)
    .fetch_all(pool)
    .await?;
    let tags = rows
        .into_iter()
        .map(|(code, name, source, since)| {
            Ok(CustomerTag { code, name, source: source.parse().map_err(Error::Corrupt)?, since })
        })
        .collect::<Result<_>>()?;
    Ok((survivor, tags))
}

/// Whether the survivor of `number` has tag `code`, and why: a rule evaluated now on
/// the stored value, with every test's reading (as [`refresh`] evaluates it); a manual
/// tag's setting.
pub async fn explain(pool: &PgPool, number: &str, code: &Code) -> Result<(TagDefinition, bool, String)> {
    let survivor = survivor(pool, number).await?;
    let tag = definition(pool, code).await?;
    let (holds, explanation) = match &tag.kind {
        TagKind::Rule(expr) => match attributes(pool, Some(&survivor)).await?.into_iter().next() {
            Some((_, customer)) => {
                let rules = super::rules::with_default(super::rules::stored(pool).await?)?;
                let explained = expr.explain(&customer, &level_order(&rules, &customer));
                (explained.outcome, explained.to_string())
            }
            None => (false, format!("customer {survivor} has no value yet (no balance): rule tags need one")),
        },
        TagKind::Manual => match manual_setting(pool, &survivor, code).await? {
            Some((by, since)) => (true, format!("set by {by} at {since}")),
            None => (false, "a manual tag nobody set on this customer".to_string()),
        },
    };
    Ok((tag, holds, explanation))
}

/// Who set the manual tag `code` on `number` and when, if anybody did.
async fn manual_setting(pool: &PgPool, number: &str, code: &Code) -> Result<Option<(String, OffsetDateTime)>> {
    Ok(sqlx::query_as(
        "SELECT set_by, since FROM customer_tag WHERE customer_number = $1 AND tag_code = $2 AND source = 'manual'",
    )
    .bind(number)
    .bind(code.as_str())
    .fetch_optional(pool)
    .await?)
}
