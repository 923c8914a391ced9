//! Scorecard versions (`scorecard`) and scoring one customer: the customer's attributes
//! are read as tag conditions read them ([`super::tags::attributes`]), so a metric means
//! the same in a scorecard as in a condition. Scores are computed when asked, from the
//! stored value and RFM, so they are as current as those.

use sqlx::PgConnection;

use crate::domain::expr::Value;
use crate::domain::score::Score;
use crate::domain::scorecard::Scorecard;
use crate::domain::tags::attribute;
use crate::error::{Error, Result};

/// A stored scorecard version.
#[derive(sqlx::FromRow)]
struct ScorecardRow {
    name: String,
    definition: sqlx::types::Json<Scorecard>,
}

/// A scorecard version and its display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedScorecard {
    /// Name for staff.
    pub name: String,
    /// The version.
    pub card: Scorecard,
}

impl From<ScorecardRow> for NamedScorecard {
    fn from(r: ScorecardRow) -> Self {
        NamedScorecard { name: r.name, card: r.definition.0 }
    }
}

/// Stores `card` as the next version of its code (its `version` is ignored); answers it
/// as stored.
pub async fn define(tx: &mut PgConnection, name: &str, card: &Scorecard, defined_by: &str) -> Result<NamedScorecard> {
    // One definer of a code at a time: the versions of a code are counted under it.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('scorecard:' || $1))")
        .bind(&card.code)
        .execute(&mut *tx)
        .await?;
    let latest: Option<i32> = sqlx::query_scalar("SELECT max(version) FROM scorecard WHERE scorecard_code = $1")
        .bind(&card.code)
        .fetch_one(&mut *tx)
        .await?;
    let version = latest.unwrap_or(0) + 1;
    let stored = Scorecard { version: version.unsigned_abs(), ..card.clone() };
    sqlx::query(
        "INSERT INTO scorecard (scorecard_code, version, name, definition, defined_by) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&card.code)
    .bind(version)
    .bind(name)
    .bind(sqlx::types::Json(&stored))
    .bind(defined_by)
    .execute(&mut *tx)
    .await?;
    Ok(NamedScorecard { name: name.to_string(), card: stored })
}

/// The latest version of every scorecard, by code.
pub async fn latest(ex: impl sqlx::PgExecutor<'_>) -> Result<Vec<NamedScorecard>> {
    let rows: Vec<ScorecardRow> = sqlx::query_as(
        "SELECT DISTINCT ON (scorecard_code) name, definition FROM scorecard
         ORDER BY scorecard_code, version DESC",
    )
    .fetch_all(ex)
    .await?;
    Ok(rows.into_iter().map(NamedScorecard::from).collect())
}

/// Scorecard `code` at `version` (the latest for `None`), or NOT_FOUND.
pub async fn get(ex: impl sqlx::PgExecutor<'_>, code: &str, version: Option<u32>) -> Result<NamedScorecard> {
    let row: Option<ScorecardRow> = sqlx::query_as(
        "SELECT name, definition FROM scorecard
         WHERE scorecard_code = $1 AND ($2::INTEGER IS NULL OR version = $2)
         ORDER BY version DESC LIMIT 1",
    )
    .bind(code)
    .bind(version.map(|v| i32::try_from(v).unwrap_or(i32::MAX)))
    .fetch_optional(ex)
    .await?;
    let what = match version {
        Some(v) => format!("scorecard {code} version {v}"),
        None => format!("scorecard {code}"),
    };
    row.map(NamedScorecard::from).ok_or(Error::NotFound(what))
}

/// Scores customer `number` (a survivor) under each of `cards`; a customer without a
/// value has no metric values and scores each card's lowest total.
pub async fn score(ex: impl sqlx::PgExecutor<'_>, number: &str, cards: &[Scorecard]) -> Result<Vec<Score>> {
    let customer = super::tags::attributes(ex, Some(number)).await?.into_iter().next().map(|(_, a)| a);
    let value_of = |metric: &str| {
        let a = attribute(metric)?;
        match customer.as_ref()?.get(a) {
            Value::Number(n) => Some(n),
            _ => None,
        }
    };
    Ok(cards.iter().map(|card| card.score(value_of)).collect())
}
