//! Business targets: trees of targets (the one head office issued and the shares
//! decomposed from it, migration 0005), their splits as versions, and their progress.
//!
//! Promises:
//! - A split is checked in full ([`Decomposition::validate`], and no RM twice in a
//!   tree) before it is kept; a refused split changes nothing (the caller's
//!   transaction is not committed). Splitting again keeps a share whose assignee and
//!   value are unchanged (with what was decomposed below it) and drops the others with
//!   their subtrees; every split is kept in `target_split` as a version.
//! - Decompositions of one target are serialised by a lock on its row.
//! - Actuals are computed on request from the facts (`sql/target_actuals.sql`), over
//!   the customers counted for the tree (see the SQL for each indicator), and rolled up
//!   by [`roll_up`]; reads are filtered by `target_visible` (migration 0005).

use std::collections::{BTreeSet, HashMap, HashSet};

use crm_platform::FieldViolations;
use crm_platform::auth::Visibility;
use sqlx::{PgConnection, PgPool};
use time::Date;
use uuid::Uuid;

use crate::domain::target_progress::{Progress, RmActual, levels_at_or_above, roll_up};
use crate::domain::targets::{Assignee, Decomposition, Indicator, OrgPath, Period, RmId, Target, TargetError};
use crate::error::{Error, Result};

/// A stored target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTarget {
    /// Its id.
    pub id: Uuid,
    /// The issued target of its tree.
    pub root_id: Uuid,
    /// The target it was decomposed from; `None` for an issued one.
    pub parent_id: Option<Uuid>,
    /// Assignee, indicator, period, value.
    pub target: Target,
    /// Where its actuals are booked: its org, or for an RM the parent's org.
    pub booked_at: OrgPath,
    /// Its current split's version; 0 when not decomposed.
    pub split_version: i32,
}

/// A target as stored.
#[derive(sqlx::FromRow)]
struct TargetRow {
    target_id: Uuid,
    root_id: Uuid,
    parent_id: Option<Uuid>,
    indicator_kind: String,
    indicator_code: String,
    period_from: Date,
    period_to: Date,
    org_path: Option<String>,
    rm_id: Option<String>,
    booked_at: String,
    value: i64,
    split_version: i32,
}

impl TryFrom<TargetRow> for StoredTarget {
    type Error = Error;

    fn try_from(r: TargetRow) -> Result<Self> {
        let corrupt = |what: String| Error::Corrupt(format!("target {}: {what}", r.target_id));
        let assignee = match (&r.org_path, &r.rm_id) {
            (Some(path), None) => Assignee::Org(OrgPath::parse(path).map_err(|e| corrupt(e.to_string()))?),
            (None, Some(rm)) => Assignee::Rm(RmId::parse(rm).map_err(|e| corrupt(e.to_string()))?),
            _ => return Err(corrupt("neither an org nor an RM".into())),
        };
        let indicator = Indicator::from_stored(&r.indicator_kind, &r.indicator_code)
            .ok_or_else(|| corrupt(format!("indicator {:?} {:?}", r.indicator_kind, r.indicator_code)))?;
        Ok(StoredTarget {
            id: r.target_id,
            root_id: r.root_id,
            parent_id: r.parent_id,
            target: Target {
                assignee,
                indicator,
                period: Period::new(r.period_from, r.period_to).map_err(|e| corrupt(e.to_string()))?,
                value: r.value,
            },
            booked_at: OrgPath::parse(&r.booked_at).map_err(|e| corrupt(e.to_string()))?,
            split_version: r.split_version,
        })
    }
}

/// The columns of a [`TargetRow`] from `target t`.
const COLUMNS: &str = "t.target_id, t.root_id, t.parent_id, t.indicator_kind, t.indicator_code, t.period_from,
    t.period_to, t.org_path, t.rm_id, t.booked_at, t.value,
    COALESCE((SELECT max(s.version) FROM target_split s WHERE s.target_id = t.target_id), 0) AS split_version";

fn rows(rows: Vec<TargetRow>) -> Result<Vec<StoredTarget>> {
    rows.into_iter().map(StoredTarget::try_from).collect()
}

fn invalid(field: &str, description: impl Into<String>) -> Error {
    let mut v = FieldViolations::new();
    v.add(field, description);
    Error::Invalid(v)
}

/// Whether a target booked at `booked_at` (an RM's: also `rm`) lies inside `visibility`.
pub async fn visible(
    pool: impl sqlx::PgExecutor<'_>,
    booked_at: &OrgPath,
    rm: Option<&RmId>,
    visibility: &Visibility,
) -> Result<bool> {
    let (scope, arg) = visibility.sql_args();
    Ok(sqlx::query_scalar("SELECT target_visible($1, $2, $3, $4)")
        .bind(booked_at.as_str())
        .bind(rm.map(RmId::as_str))
        .bind(scope)
        .bind(arg)
        .fetch_one(pool)
        .await?)
}

/// Target `id`, or NOT_FOUND; `lock` locks its row for a split.
pub async fn get(tx: &mut PgConnection, id: Uuid, lock: bool) -> Result<StoredTarget> {
    let sql = format!("SELECT {COLUMNS} FROM target t WHERE t.target_id = $1{}", if lock { " FOR UPDATE" } else { "" });
    let row: Option<TargetRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut *tx).await?;
    row.ok_or_else(|| Error::NotFound(format!("target {id}")))?.try_into()
}

/// Checks what only the store can: the level exists in the rule in force at the
/// period's end, the product in the catalogue.
async fn check_indicator(tx: &mut PgConnection, target: &Target) -> Result<()> {
    match &target.indicator {
        Indicator::CustomersAtLevel { level } => {
            let rules = super::rules::rule_set(tx).await?;
            let end = target.period.to();
            if rules.rule_on(end).is_none_or(|rule| rule.rank_of(level).is_none()) {
                let message = format!("no level {level:?} in the level rule in force on {end}");
                return Err(invalid("indicator.level_code", message));
            }
        }
        Indicator::ProductSales { product } => {
            if super::catalogue::known_products(tx, &[product.as_str()]).await?.is_empty() {
                return Err(invalid("indicator.product_code", format!("no product {product:?} in the catalogue")));
            }
        }
        Indicator::AumGrowth | Indicator::NewCustomers => {}
    }
    Ok(())
}

/// Stores `target` (an org's) as the issued target of a new tree; ALREADY_EXISTS when
/// the org has one for the indicator and period.
pub async fn issue(tx: &mut PgConnection, target: &Target, issued_by: &str) -> Result<StoredTarget> {
    let Assignee::Org(org) = &target.assignee else {
        return Err(invalid("org_path", "targets are issued to orgs"));
    };
    check_indicator(tx, target).await?;
    let (kind, code) = target.indicator.stored();
    let id = Uuid::now_v7();
    let inserted = sqlx::query(
        "INSERT INTO target (target_id, root_id, parent_id, indicator_kind, indicator_code, period_from, period_to,
                             org_path, rm_id, booked_at, value, created_by)
         VALUES ($1, $1, NULL, $2, $3, $4, $5, $6, NULL, $6, $7, $8)
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(kind)
    .bind(code)
    .bind(target.period.from())
    .bind(target.period.to())
    .bind(org.as_str())
    .bind(target.value)
    .bind(issued_by)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(Error::AlreadyExists(format!(
            "a {kind} target of org {} for {} to {}",
            org.as_str(),
            target.period.from(),
            target.period.to()
        )));
    }
    get(tx, id, false).await
}

/// Splits `parent` (locked by [`get`]) into `shares` as its next version; answers the
/// version and the shares as stored targets, in order. A refusal leaves the
/// transaction to be dropped.
pub async fn decompose(
    tx: &mut PgConnection,
    parent: &StoredTarget,
    shares: &[(Assignee, i64)],
    decomposed_by: &str,
) -> Result<(i32, Vec<StoredTarget>)> {
    if let Assignee::Rm(_) = &parent.target.assignee {
        let refusal = TargetError::RmCannotBeDecomposed(parent.target.assignee.clone());
        return Err(invalid("target_id", refusal.to_string()));
    }
    let decomposition = Decomposition { parent: parent.target.clone(), children: shares.to_vec() };
    decomposition.validate().map_err(|e| invalid("shares", e.to_string()))?;
    let current = rows(
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM target t WHERE t.parent_id = $1")))
            .bind(parent.id)
            .fetch_all(&mut *tx)
            .await?,
    )?;
    let wanted: HashSet<(&Assignee, i64)> = shares.iter().map(|(a, v)| (a, *v)).collect();
    let dropped: Vec<Uuid> =
        current.iter().filter(|c| !wanted.contains(&(&c.target.assignee, c.target.value))).map(|c| c.id).collect();
    sqlx::query("DELETE FROM target WHERE target_id = ANY($1)").bind(&dropped).execute(&mut *tx).await?;
    check_rms_free(tx, parent, shares).await?;
    let version: i32 = sqlx::query_scalar(
        "INSERT INTO target_split (target_id, version, shares, decomposed_by)
         SELECT $1, COALESCE(max(version), 0) + 1, $2, $3 FROM target_split WHERE target_id = $1
         RETURNING version",
    )
    .bind(parent.id)
    .bind(sqlx::types::Json(shares_json(shares)))
    .bind(decomposed_by)
    .fetch_one(&mut *tx)
    .await?;
    let kept: HashMap<&Assignee, &StoredTarget> =
        current.iter().filter(|c| !dropped.contains(&c.id)).map(|c| (&c.target.assignee, c)).collect();
    let mut children = Vec::with_capacity(shares.len());
    for (assignee, value) in shares {
        let child = match kept.get(assignee) {
            Some(child) => (*child).clone(),
            None => insert_child(tx, parent, assignee, *value, decomposed_by).await?,
        };
        children.push(child);
    }
    Ok((version, children))
}

/// The split as kept in `target_split.shares`.
fn shares_json(shares: &[(Assignee, i64)]) -> serde_json::Value {
    shares.iter().map(|(a, v)| serde_json::json!({ "assignee": a, "value": v })).collect()
}

/// Refuses RMs of `shares` that have a target elsewhere in the tree of `parent`.
async fn check_rms_free(tx: &mut PgConnection, parent: &StoredTarget, shares: &[(Assignee, i64)]) -> Result<()> {
    let rms: Vec<&str> = shares
        .iter()
        .filter_map(|(a, _)| match a {
            Assignee::Rm(rm) => Some(rm.as_str()),
            Assignee::Org(_) => None,
        })
        .collect();
    let taken: Vec<(String, String)> = sqlx::query_as(
        "SELECT rm_id, booked_at FROM target
         WHERE root_id = $1 AND rm_id = ANY($2) AND parent_id IS DISTINCT FROM $3",
    )
    .bind(parent.root_id)
    .bind(&rms)
    .bind(parent.id)
    .fetch_all(&mut *tx)
    .await?;
    if taken.is_empty() {
        return Ok(());
    }
    let mut v = FieldViolations::new();
    for (i, (assignee, _)) in shares.iter().enumerate() {
        if let Assignee::Rm(rm) = assignee
            && let Some((_, at)) = taken.iter().find(|(t, _)| t == rm.as_str())
        {
            v.add(
                format!("shares[{i}].assignee.rm_id"),
                format!("RM {} already has a target in this tree, under {at}", rm.as_str()),
            );
        }
    }
    Err(Error::Invalid(v))
}

async fn insert_child(
    tx: &mut PgConnection,
    parent: &StoredTarget,
    assignee: &Assignee,
    value: i64,
    created_by: &str,
) -> Result<StoredTarget> {
    let (org, rm, booked_at) = match assignee {
        Assignee::Org(path) => (Some(path.as_str()), None, path.as_str()),
        Assignee::Rm(rm) => (None, Some(rm.as_str()), parent.booked_at.as_str()),
    };
    let (kind, code) = parent.target.indicator.stored();
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO target (target_id, root_id, parent_id, indicator_kind, indicator_code, period_from, period_to,
                             org_path, rm_id, booked_at, value, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(id)
    .bind(parent.root_id)
    .bind(parent.id)
    .bind(kind)
    .bind(code)
    .bind(parent.target.period.from())
    .bind(parent.target.period.to())
    .bind(org)
    .bind(rm)
    .bind(booked_at)
    .bind(value)
    .bind(created_by)
    .execute(&mut *tx)
    .await?;
    get(tx, id, false).await
}

/// The targets whose period overlaps `days`, inside `visibility`.
pub async fn list(pool: &PgPool, days: &Period, visibility: &Visibility) -> Result<Vec<StoredTarget>> {
    let (scope, arg) = visibility.sql_args();
    rows(
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM target t
             WHERE t.period_from <= $2 AND t.period_to >= $1 AND target_visible(t.booked_at, t.rm_id, $3, $4)
             ORDER BY t.period_from, t.period_to, t.root_id, t.booked_at COLLATE \"C\", t.rm_id COLLATE \"C\" NULLS FIRST"
        )))
        .bind(days.from())
        .bind(days.to())
        .bind(scope)
        .bind(arg)
        .fetch_all(pool)
        .await?,
    )
}

/// One row of actuals: booked directly at an org, or by an RM with a target.
#[derive(sqlx::FromRow)]
struct ActualRow {
    org_path: Option<String>,
    rm_id: Option<String>,
    value: i64,
}

/// A target of a tree and whether the caller may see it.
#[derive(sqlx::FromRow)]
struct TreeRow {
    #[sqlx(flatten)]
    target: TargetRow,
    visible: bool,
}

/// Target `id` and everything decomposed below it, each with its progress, inside
/// `visibility`: the asked target first, then by booking org and RM. NOT_FOUND for an
/// unknown target, OUT_OF_SCOPE when none is visible. Read in one snapshot.
pub async fn progress(pool: &PgPool, id: Uuid, visibility: &Visibility) -> Result<Vec<(StoredTarget, Progress)>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let asked = get(&mut tx, id, false).await?;
    let (scope, arg) = visibility.sql_args();
    let tree: Vec<TreeRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, target_visible(t.booked_at, t.rm_id, $2, $3) AS visible FROM target t WHERE t.root_id = $1"
    )))
    .bind(asked.root_id)
    .bind(scope)
    .bind(arg)
    .fetch_all(&mut *tx)
    .await?;
    let mut targets = Vec::with_capacity(tree.len());
    let mut visible = HashSet::new();
    for row in tree {
        let target = StoredTarget::try_from(row.target)?;
        if row.visible {
            visible.insert(target.id);
        }
        targets.push(target);
    }
    let below = subtree(&targets, asked.id);
    if !targets.iter().any(|t| below.contains(&t.id) && visible.contains(&t.id)) {
        return Err(Error::OutOfScope(format!("target {id}")));
    }
    let root = targets.iter().find(|t| t.parent_id.is_none()).ok_or_else(|| Error::Corrupt(format!("tree of {id}")))?;
    let (org_actuals, rm_actuals) = actuals(&mut tx, root, &targets).await?;
    let values: Vec<(Assignee, i64)> = targets.iter().map(|t| (t.target.assignee.clone(), t.target.value)).collect();
    let progress =
        roll_up(&values, &org_actuals, &rm_actuals).map_err(|e| Error::Corrupt(format!("tree of {id}: {e}")))?;
    let mut shown: Vec<(StoredTarget, Progress)> =
        targets.into_iter().zip(progress).filter(|(t, _)| below.contains(&t.id) && visible.contains(&t.id)).collect();
    shown.sort_by(|(a, _), (b, _)| {
        let key = |t: &StoredTarget| {
            let rm = match &t.target.assignee {
                Assignee::Org(_) => None,
                Assignee::Rm(rm) => Some(rm.as_str().to_string()),
            };
            (t.id != id, t.booked_at.clone(), rm)
        };
        key(a).cmp(&key(b))
    });
    Ok(shown)
}

/// The ids of `top` and of every target decomposed below it.
fn subtree(targets: &[StoredTarget], top: Uuid) -> BTreeSet<Uuid> {
    let mut below = BTreeSet::from([top]);
    loop {
        let before = below.len();
        for t in targets {
            if t.parent_id.is_some_and(|p| below.contains(&p)) {
                below.insert(t.id);
            }
        }
        if below.len() == before {
            return below;
        }
    }
}

/// The tree's actuals: figures booked directly at orgs, and by the RMs with a target
/// in the tree (at the org their target was decomposed under).
async fn actuals(
    tx: &mut PgConnection,
    root: &StoredTarget,
    tree: &[StoredTarget],
) -> Result<(Vec<(OrgPath, i64)>, Vec<RmActual>)> {
    let booking: HashMap<&str, &OrgPath> = tree
        .iter()
        .filter_map(|t| match &t.target.assignee {
            Assignee::Rm(rm) => Some((rm.as_str(), &t.booked_at)),
            Assignee::Org(_) => None,
        })
        .collect();
    let rms: Vec<&str> = booking.keys().copied().collect();
    let period = root.target.period;
    let levels = match &root.target.indicator {
        Indicator::CustomersAtLevel { level } => super::rules::rule_set(tx)
            .await?
            .rule_on(period.to())
            .map(|rule| levels_at_or_above(rule, level))
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let (kind, code) = root.target.indicator.stored();
    let rows: Vec<ActualRow> = sqlx::query_as(include_str!("sql/target_actuals.sql"))
        .bind(kind)
        .bind(code)
        .bind(period.from())
        .bind(period.to())
        .bind(root.booked_at.as_str())
        .bind(&rms)
        .bind(&levels)
        .fetch_all(&mut *tx)
        .await?;
    let corrupt = |what: String| Error::Corrupt(format!("actuals of target {}: {what}", root.id));
    let (mut at_orgs, mut by_rms) = (Vec::new(), Vec::new());
    for row in rows {
        match (row.rm_id, row.org_path) {
            (Some(rm), _) => {
                let org = booking.get(rm.as_str()).ok_or_else(|| corrupt(format!("RM {rm} has no target")))?;
                let rm = RmId::parse(&rm).map_err(|e| corrupt(e.to_string()))?;
                by_rms.push(RmActual { rm, org: (*org).clone(), value: row.value });
            }
            (None, Some(path)) => {
                at_orgs.push((OrgPath::parse(&path).map_err(|e| corrupt(e.to_string()))?, row.value));
            }
            (None, None) => return Err(corrupt("a figure booked nowhere".into())),
        }
    }
    Ok((at_orgs, by_rms))
}
