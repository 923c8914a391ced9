//! Segments: their definitions, the membership kept current with its history, and
//! snapshots.
//!
//! Membership is derived data, like rule tags: [`refresh_memberships`] re-evaluates
//! every segment for the customers whose attributes or tags may have changed (called
//! by [`super::valuation`] after a recompute or an RFM rescore, and by
//! [`super::tags`] after a manual tag changes), and [`define`] evaluates a (re)defined
//! segment for every customer, both through the one rule
//! [`crate::domain::membership::membership_changes`]. A customer without a value
//! (absorbed by a merge, or without balances) meets no condition, so it leaves every
//! segment when it is refreshed. Each entry and exit is a row of `segment_membership`
//! with its time (the database clock when it was written) and announced as
//! `SegmentMembershipChanged` in the same transaction; "who was in at time T" reads
//! the rows ([`crate::domain::membership::Stay::covers`]). The current membership
//! equals a from-scratch evaluation ([`fresh_members`]; differential test in
//! `tests/api/segments.rs`).
//!
//! Concurrency as for tags: [`define`] locks `segment_definition` EXCLUSIVE, a refresh
//! ROW SHARE before it reads the definitions, and a refresh locks the rows of its
//! customers in `customer` (in order) before it reads their memberships, so two
//! refreshes of one customer (a manual tag beside a recompute) run one after the
//! other. A rare deadlock with a full recompute's chunk is possible (PostgreSQL ends
//! one; the caller retries).
//!
//! Snapshots: [`evaluate`] keeps the members now (or at a past time) as rows of a
//! snapshot that nothing changes afterwards: marketing reads back exactly the list it
//! was counted from, however the customers move later.

use std::collections::BTreeSet;

use crm_platform::messaging::outbox::{OutboxEvent, write_events};
use crm_proto::crm::analytics::v1 as pb;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::expr::{ParseError, parse};
use crate::domain::membership::{Membership, MembershipChangeKind, MembershipChanges, membership_changes};
use crate::domain::tags::{Code, CustomerAttributes, SegmentDefinition, check_segment};
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

/// One stay of a customer in a segment.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StayRow {
    /// The segment.
    pub segment_code: String,
    /// Its name now.
    pub segment_name: String,
    /// When the customer entered.
    pub entered_at: OffsetDateTime,
    /// The version it entered under.
    pub entered_version: i32,
    /// When it left, if it did.
    pub left_at: Option<OffsetDateTime>,
    /// The version it left under, if it did.
    pub left_version: Option<i32>,
}

/// One entry into or exit from a segment.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ChangeRow {
    /// The segment.
    pub segment_code: String,
    /// The customer.
    pub customer_number: String,
    /// Entered or left.
    #[sqlx(try_from = "String")]
    pub kind: MembershipChangeKind,
    /// When.
    pub at: OffsetDateTime,
    /// The segment version evaluated.
    pub segment_version: i32,
}

/// Checks `condition` against the attribute catalogue and the tags defined now, stores
/// the segment as the next version of `code` and evaluates it for every customer
/// (entries and exits announced). `Err(Err(ParseError))` (inner) when the condition is
/// refused; nothing is stored then.
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
    sqlx::query("LOCK TABLE segment_definition IN EXCLUSIVE MODE").execute(&mut *tx).await?;
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
    sqlx::query(
        "INSERT INTO segment_version (segment_code, version, name, condition, defined_by, defined_at)
         SELECT segment_code, version, name, condition, defined_by, defined_at FROM segment_definition
         WHERE segment_code = $1",
    )
    .bind(code.as_str())
    .execute(&mut *tx)
    .await?;
    let segment = SegmentDefinition { code: code.clone(), name: name.to_string(), condition, version: version as u32 };
    let found: BTreeSet<Membership> =
        fresh_members(tx, &segment).await?.into_iter().map(|n| (code.to_string(), n)).collect();
    let recorded: BTreeSet<Membership> = sqlx::query_as(
        "SELECT segment_code, customer_number FROM segment_membership WHERE segment_code = $1 AND left_at IS NULL",
    )
    .bind(code.as_str())
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    apply(tx, &membership_changes(&recorded, &found)).await?;
    Ok(Ok(segment))
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

/// Every segment, by code.
async fn definitions(tx: &mut PgConnection) -> Result<Vec<SegmentDefinition>> {
    let rows: Vec<DefinitionRow> =
        sqlx::query_as("SELECT segment_code, name, condition, version FROM segment_definition ORDER BY segment_code")
            .fetch_all(&mut *tx)
            .await?;
    rows.into_iter().map(SegmentDefinition::try_from).collect()
}

/// Whether `segment` holds for `customer` (its tags read in), under the level order
/// of the rules in force.
fn holds(segment: &SegmentDefinition, customer: &CustomerAttributes, rules: &crate::domain::levels::RuleSet) -> bool {
    segment.condition.eval(customer, &super::tags::level_order(rules, customer))
}

/// The customers `segment` holds for now, evaluated from scratch over every valued
/// customer, in order.
pub async fn fresh_members(tx: &mut PgConnection, segment: &SegmentDefinition) -> Result<Vec<String>> {
    let rules = super::rules::rule_set(tx).await?;
    let mut tags = super::tags::all_customer_tags(&mut *tx).await?;
    Ok(super::tags::attributes(&mut *tx, None)
        .await?
        .into_iter()
        .filter_map(|(number, mut customer)| {
            customer.tags = tags.remove(&number).unwrap_or_default();
            holds(segment, &customer, &rules).then_some(number)
        })
        .collect())
}

/// Re-evaluates every segment for `customers`: entries and exits stored and announced.
/// A number without a value (absorbed, forgotten, unknown) leaves every segment.
pub async fn refresh_memberships(tx: &mut PgConnection, customers: &BTreeSet<String>) -> Result<()> {
    if customers.is_empty() {
        return Ok(());
    }
    sqlx::query("LOCK TABLE segment_definition IN ROW SHARE MODE").execute(&mut *tx).await?;
    let segments = definitions(tx).await?;
    if segments.is_empty() {
        return Ok(());
    }
    let numbers: Vec<String> = customers.iter().cloned().collect();
    sqlx::query("SELECT 1 FROM customer WHERE customer_number = ANY($1) ORDER BY customer_number FOR UPDATE")
        .bind(&numbers)
        .execute(&mut *tx)
        .await?;
    let rules = super::rules::rule_set(tx).await?;
    let mut tags = super::tags::tags_of(&mut *tx, &numbers).await?;
    let mut found = BTreeSet::new();
    for (number, mut customer) in super::tags::attributes_of(&mut *tx, &numbers).await? {
        customer.tags = tags.remove(&number).unwrap_or_default();
        for segment in segments.iter().filter(|s| holds(s, &customer, &rules)) {
            found.insert((segment.code.to_string(), number.clone()));
        }
    }
    let recorded: BTreeSet<Membership> = sqlx::query_as(
        "SELECT segment_code, customer_number FROM segment_membership
         WHERE customer_number = ANY($1) AND left_at IS NULL",
    )
    .bind(&numbers)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    apply(tx, &membership_changes(&recorded, &found)).await
}

/// Stores `changes` (exits first) at one time, under each segment's current version,
/// and announces each one that changed a row.
async fn apply(tx: &mut PgConnection, changes: &MembershipChanges) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let at: OffsetDateTime = sqlx::query_scalar("SELECT clock_timestamp()").fetch_one(&mut *tx).await?;
    let columns = |pairs: &[Membership]| -> (Vec<String>, Vec<String>) { pairs.iter().cloned().unzip() };
    let (segments, customers) = columns(&changes.left);
    let mut done: Vec<ChangeRow> = sqlx::query_as(
        "UPDATE segment_membership m SET left_at = $3, left_version = d.version
         FROM UNNEST($1::TEXT[], $2::TEXT[]) AS x(segment_code, customer_number), segment_definition d
         WHERE m.segment_code = x.segment_code AND m.customer_number = x.customer_number AND m.left_at IS NULL
           AND d.segment_code = m.segment_code
         RETURNING m.segment_code, m.customer_number, 'left' AS kind, m.left_at AS at, m.left_version AS segment_version",
    )
    .bind(&segments)
    .bind(&customers)
    .bind(at)
    .fetch_all(&mut *tx)
    .await?;
    let (segments, customers) = columns(&changes.entered);
    let entered: Vec<ChangeRow> = sqlx::query_as(
        "INSERT INTO segment_membership (segment_code, customer_number, entered_at, entered_version)
         SELECT x.segment_code, x.customer_number, $3, d.version
         FROM UNNEST($1::TEXT[], $2::TEXT[]) AS x(segment_code, customer_number)
         JOIN segment_definition d USING (segment_code)
         ON CONFLICT (segment_code, customer_number) WHERE left_at IS NULL DO NOTHING
         RETURNING segment_code, customer_number, 'entered' AS kind, entered_at AS at,
                   entered_version AS segment_version",
    )
    .bind(&segments)
    .bind(&customers)
    .bind(at)
    .fetch_all(&mut *tx)
    .await?;
    done.extend(entered);
    let events: Vec<OutboxEvent> = done
        .iter()
        .map(|c| {
            let event = pb::SegmentMembershipChanged { change: Some(c.into()) };
            OutboxEvent::new(&c.customer_number, &event)
        })
        .collect();
    write_events(tx, super::EVENT_SOURCE, &events, None).await?;
    Ok(())
}

/// Keeps the members of segment `code` as a snapshot: its members now, or with
/// `as_of` its members then (from the membership history) under the version then in
/// force. Must be the first call in `tx`: it reads in one snapshot of the database
/// (REPEATABLE READ), so the count and the members agree.
pub async fn evaluate(
    tx: &mut PgConnection,
    code: &Code,
    as_of: Option<OffsetDateTime>,
    evaluated_by: &str,
) -> Result<Snapshot> {
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *tx).await?;
    let segment = definition(&mut *tx, code).await?;
    let (version, condition) = match as_of {
        None => (segment.version as i32, segment.condition.to_string()),
        Some(t) => sqlx::query_as::<_, (i32, String)>(
            "SELECT version, condition FROM segment_version WHERE segment_code = $1 AND defined_at <= $2
             ORDER BY version DESC LIMIT 1",
        )
        .bind(code.as_str())
        .bind(t)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| {
            let mut v = crm_platform::FieldViolations::new();
            v.add("as_of", format!("is before segment {code} was defined"));
            Error::Invalid(v)
        })?,
    };
    let members: Vec<String> = sqlx::query_scalar(
        "SELECT customer_number FROM segment_membership
         WHERE segment_code = $1
           AND CASE WHEN $2::TIMESTAMPTZ IS NULL THEN left_at IS NULL
                    ELSE entered_at <= $2 AND (left_at IS NULL OR left_at > $2) END
         ORDER BY customer_number",
    )
    .bind(code.as_str())
    .bind(as_of)
    .fetch_all(&mut *tx)
    .await?;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO segment_snapshot (snapshot_id, segment_code, segment_version, condition, member_count,
                                       evaluated_by, as_of)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(code.as_str())
    .bind(version)
    .bind(condition)
    .bind(members.len() as i64)
    .bind(evaluated_by)
    .bind(as_of)
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO segment_member (snapshot_id, customer_number) SELECT $1, UNNEST($2::TEXT[])")
        .bind(id)
        .bind(&members)
        .execute(&mut *tx)
        .await?;
    Ok(Snapshot { id, member_count: members.len() as i64, segment_version: version as u32 })
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

/// Every stay of customer `number` (a survivor) in a segment, newest entry first.
pub async fn stays(pool: &PgPool, number: &str) -> Result<Vec<StayRow>> {
    Ok(sqlx::query_as(
        "SELECT m.segment_code, d.name AS segment_name, m.entered_at, m.entered_version, m.left_at, m.left_version
         FROM segment_membership m JOIN segment_definition d USING (segment_code)
         WHERE m.customer_number = $1
         ORDER BY m.entered_at DESC, m.segment_code",
    )
    .bind(number)
    .fetch_all(pool)
    .await?)
}

/// The entries into and exits from segment `code` at or after `start` and before
/// `end` (unbounded when `None`), oldest first (then by customer, entries first):
/// `limit` of them from position `offset`. NOT_FOUND for an unknown segment.
pub async fn changes(
    pool: &PgPool,
    code: &Code,
    (start, end): (Option<OffsetDateTime>, Option<OffsetDateTime>),
    (limit, offset): (i64, i64),
) -> Result<Vec<ChangeRow>> {
    definition(pool, code).await?;
    Ok(sqlx::query_as(include_str!("sql/segment_membership_changes.sql"))
        .bind(code.as_str())
        .bind(start)
        .bind(end)
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await?)
}
