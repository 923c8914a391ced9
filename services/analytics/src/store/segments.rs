//! Segments: their definitions and their snapshots. Evaluating a segment reads every
//! valued customer's attributes (as [`super::tags::attributes`]) and tags now, and
//! keeps the members as rows of a snapshot that nothing changes afterwards: marketing
//! reads back exactly the list it was counted from, however the customers move later.

use std::collections::BTreeSet;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::expr::{ParseError, parse};
use crate::domain::tags::{Code, SegmentDefinition, check_segment};
use crate::error::{Error, Result};

/// A stored segment definition.
#[derive(sqlx::FromRow)]
struct DefinitionRow {
    segment_code: String,
    name: String,
    condition: String,
    version: i32,
}

impl TryFrom<DefinitionRow> for SegmentDefinition {
    type Error = Error;

    fn try_from(r: DefinitionRow) -> Result<Self> {
        let corrupt = |what: String| Error::Corrupt(format!("segment {}: {what}", r.segment_code));
        Ok(SegmentDefinition {
            code: r.segment_code.parse().map_err(|e: &str| corrupt(e.to_string()))?,
            condition: parse(&r.condition).map_err(|e| corrupt(format!("condition: {e}")))?,
            name: r.name,
            version: u32::try_from(r.version).map_err(|_| corrupt(format!("version {}", r.version)))?,
        })
    }
}

/// An evaluated snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Its id.
    pub id: Uuid,
    /// Members found.
    pub member_count: i64,
    /// The segment version evaluated.
    pub segment_version: u32,
}

/// Checks `condition` against the attribute catalogue and the tags defined now, and
/// stores the segment as the next version of `code`. `Err(Err(ParseError))` (inner)
/// when the condition is refused; nothing is stored then.
pub async fn define(
    tx: &mut PgConnection,
    code: &Code,
    name: &str,
    condition: &str,
    defined_by: &str,
) -> Result<Result<SegmentDefinition, ParseError>> {
    let tags: BTreeSet<String> = sqlx::query_scalar("SELECT tag_code FROM tag_definition FOR SHARE")
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
    let condition = match check_segment(condition, &tags) {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let version: i32 = sqlx::query_scalar(
        "INSERT INTO segment_definition (segment_code, name, condition, version, defined_by)
         VALUES ($1, $2, $3, 1, $4)
         ON CONFLICT (segment_code) DO UPDATE SET name = EXCLUDED.name, condition = EXCLUDED.condition,
             version = segment_definition.version + 1, defined_by = EXCLUDED.defined_by, defined_at = now()
         RETURNING version",
    )
    .bind(code.as_str())
    .bind(name)
    .bind(condition.to_string())
    .bind(defined_by)
    .fetch_one(&mut *tx)
    .await?;
    Ok(Ok(SegmentDefinition { code: code.clone(), name: name.to_string(), condition, version: version as u32 }))
}

/// The segment `code`, or NOT_FOUND.
pub async fn definition(pool: impl sqlx::PgExecutor<'_>, code: &Code) -> Result<SegmentDefinition> {
    let row: Option<DefinitionRow> =
        sqlx::query_as("SELECT segment_code, name, condition, version FROM segment_definition WHERE segment_code = $1")
            .bind(code.as_str())
            .fetch_optional(pool)
            .await?;
    row.ok_or_else(|| Error::NotFound(format!("segment {code}")))?.try_into()
}

/// Evaluates segment `code` over every valued customer and stores the snapshot. Must be
/// the first call in `tx`: it reads in one snapshot of the database (REPEATABLE READ),
/// so values and tags are read as of one moment.
pub async fn evaluate(tx: &mut PgConnection, code: &Code, evaluated_by: &str) -> Result<Snapshot> {
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *tx).await?;
    let segment = definition(&mut *tx, code).await?;
    let rules = super::rules::rule_set(tx).await?;
    let mut tags = super::tags::all_customer_tags(&mut *tx).await?;
    let members: Vec<String> = super::tags::attributes(&mut *tx, None)
        .await?
        .into_iter()
        .filter_map(|(number, mut customer)| {
            customer.tags = tags.remove(&number).unwrap_or_default();
            let levels = super::tags::level_order(&rules, &customer);
            segment.condition.eval(&customer, &levels).then_some(number)
        })
        .collect();
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO segment_snapshot (snapshot_id, segment_code, segment_version, condition, member_count,
                                       evaluated_by)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(code.as_str())
    .bind(segment.version as i32)
    .bind(segment.condition.to_string())
    .bind(members.len() as i64)
    .bind(evaluated_by)
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO segment_member (snapshot_id, customer_number) SELECT $1, UNNEST($2::TEXT[])")
        .bind(id)
        .bind(&members)
        .execute(&mut *tx)
        .await?;
    Ok(Snapshot { id, member_count: members.len() as i64, segment_version: segment.version })
}

/// Whether snapshot `id` exists.
pub async fn exists(pool: &PgPool, id: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM segment_snapshot WHERE snapshot_id = $1)")
        .bind(id)
        .fetch_one(pool)
        .await?)
}

/// Up to `limit` members of snapshot `id` after `after`, in order.
pub async fn members(pool: &PgPool, id: Uuid, after: Option<&str>, limit: i64) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT customer_number FROM segment_member
         WHERE snapshot_id = $1 AND ($2::TEXT IS NULL OR customer_number > $2)
         ORDER BY customer_number LIMIT $3",
    )
    .bind(id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
