//! The org tree (`org`): head office, branches, sub-branches, outlets. Each org keeps
//! its materialised path (`/HO/BJ/BJ01/`), so a subtree is a path prefix. Changes to
//! the tree are serialised by one advisory lock (a move rewrites a whole subtree's
//! paths), and every org whose name, path or state changed is announced with
//! `OrgChanged`.

use crm_platform::messaging::outbox;
use crm_proto::crm::identity::v1 as pb;
use serde_json::json;
use sqlx::{PgConnection, PgPool};

use super::{CallContext, EVENT_SOURCE, audit};
use crate::domain;
use crate::error::{Error, Result};

/// An org as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Org {
    /// Stable code chosen by the bank.
    pub org_id: String,
    /// Display name.
    pub name: String,
    /// `None` for the root (head office) only.
    pub parent_org_id: Option<String>,
    /// Materialised path, `/HO/…/<org_id>/`.
    pub path: String,
    /// Closed orgs take no new children or members.
    pub closed: bool,
}

/// The org `org_id`, locked for the rest of `tx`.
async fn org_in(tx: &mut PgConnection, org_id: &str) -> Result<Org> {
    sqlx::query_as::<_, Org>("SELECT org_id, name, parent_org_id, path, closed FROM org WHERE org_id = $1 FOR UPDATE")
        .bind(org_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::NotFound(format!("org {org_id}")))
}

/// Checks that `org_id` exists and is open (a principal may join it).
pub(super) async fn open_org(tx: &mut PgConnection, org_id: &str) -> Result<()> {
    let org = org_in(tx, org_id).await?;
    if org.closed {
        return Err(Error::FailedPrecondition(format!("org {org_id} is closed")));
    }
    Ok(())
}

/// Enqueues `OrgChanged` for `org` inside `tx`.
pub(super) async fn announce_org(tx: &mut PgConnection, org: &Org) -> Result<()> {
    let event = pb::OrgChanged { org: Some(org.clone().into()) };
    outbox::write_event(tx, EVENT_SOURCE, &org.org_id, &event, None).await?;
    Ok(())
}

/// Serialises changes to the org tree: moves rewrite many paths at once.
async fn lock_tree(tx: &mut PgConnection) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('identity.org_tree'))").execute(tx).await?;
    Ok(())
}

/// Creates an org under `parent` (or the root when the tree is empty).
pub async fn create_org(
    pool: &PgPool,
    actor: &CallContext,
    org_id: &str,
    name: &str,
    parent: Option<&str>,
) -> Result<Org> {
    let mut tx = pool.begin().await?;
    lock_tree(&mut tx).await?;
    let path = match parent {
        Some(parent) => {
            let parent = org_in(&mut tx, parent).await?;
            if parent.closed {
                return Err(Error::FailedPrecondition(format!("org {} is closed", parent.org_id)));
            }
            domain::child_path(&parent.path, org_id)
        }
        None => {
            let any: Option<String> =
                sqlx::query_scalar("SELECT org_id FROM org LIMIT 1").fetch_optional(&mut *tx).await?;
            if any.is_some() {
                return Err(Error::FailedPrecondition("the root org exists; give a parent_org_id".into()));
            }
            domain::root_path(org_id)
        }
    };
    let exists: Option<String> =
        sqlx::query_scalar("SELECT org_id FROM org WHERE org_id = $1").bind(org_id).fetch_optional(&mut *tx).await?;
    if exists.is_some() {
        return Err(Error::AlreadyExists(format!("org {org_id}")));
    }
    sqlx::query("INSERT INTO org (org_id, name, parent_org_id, path) VALUES ($1, $2, $3, $4)")
        .bind(org_id)
        .bind(name)
        .bind(parent)
        .bind(&path)
        .execute(&mut *tx)
        .await?;
    let org =
        Org { org_id: org_id.into(), name: name.into(), parent_org_id: parent.map(Into::into), path, closed: false };
    announce_org(&mut tx, &org).await?;
    audit(&mut tx, actor, "org.created", Some(org_id), json!({"parent": parent, "path": org.path})).await?;
    tx.commit().await?;
    Ok(org)
}

/// Renames and/or moves an org; a move rewrites the whole subtree's paths and
/// announces every org whose path changed.
pub async fn update_org(
    pool: &PgPool,
    actor: &CallContext,
    org_id: &str,
    name: Option<&str>,
    new_parent: Option<&str>,
) -> Result<Org> {
    let mut tx = pool.begin().await?;
    lock_tree(&mut tx).await?;
    let org = org_in(&mut tx, org_id).await?;
    let mut changed: Vec<String> = Vec::new();
    if let Some(name) = name {
        sqlx::query("UPDATE org SET name = $2, updated_at = now() WHERE org_id = $1")
            .bind(org_id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        changed.push(org_id.to_string());
    }
    if let Some(parent_id) = new_parent.filter(|p| org.parent_org_id.as_deref() != Some(*p)) {
        if org.parent_org_id.is_none() {
            return Err(Error::FailedPrecondition("the root org cannot move".into()));
        }
        let parent = org_in(&mut tx, parent_id).await?;
        if domain::within(&parent.path, &org.path) {
            return Err(Error::FailedPrecondition(format!("org {parent_id} is inside the subtree of {org_id}")));
        }
        if parent.closed {
            return Err(Error::FailedPrecondition(format!("org {parent_id} is closed")));
        }
        let new_path = domain::child_path(&parent.path, org_id);
        let moved: Vec<String> = sqlx::query_scalar(
            "UPDATE org SET path = $2 || substr(path, length($1) + 1), updated_at = now()
             WHERE starts_with(path, $1) RETURNING org_id",
        )
        .bind(&org.path)
        .bind(&new_path)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("UPDATE org SET parent_org_id = $2 WHERE org_id = $1")
            .bind(org_id)
            .bind(parent_id)
            .execute(&mut *tx)
            .await?;
        changed.extend(moved);
        audit(&mut tx, actor, "org.moved", Some(org_id), json!({"from": org.path, "to": new_path})).await?;
    }
    changed.sort();
    changed.dedup();
    for id in &changed {
        let changed_org = org_in(&mut tx, id).await?;
        announce_org(&mut tx, &changed_org).await?;
    }
    if name.is_some() {
        audit(&mut tx, actor, "org.renamed", Some(org_id), json!({"name": name})).await?;
    }
    let org = org_in(&mut tx, org_id).await?;
    tx.commit().await?;
    Ok(org)
}

/// Closes an org without open children or enabled members.
pub async fn close_org(pool: &PgPool, actor: &CallContext, org_id: &str) -> Result<Org> {
    let mut tx = pool.begin().await?;
    lock_tree(&mut tx).await?;
    org_in(&mut tx, org_id).await?;
    let children: i64 = sqlx::query_scalar("SELECT count(*) FROM org WHERE parent_org_id = $1 AND NOT closed")
        .bind(org_id)
        .fetch_one(&mut *tx)
        .await?;
    if children > 0 {
        return Err(Error::FailedPrecondition(format!("org {org_id} has {children} open child orgs")));
    }
    let members: i64 = sqlx::query_scalar("SELECT count(*) FROM principal WHERE org_id = $1 AND NOT disabled")
        .bind(org_id)
        .fetch_one(&mut *tx)
        .await?;
    if members > 0 {
        return Err(Error::FailedPrecondition(format!("org {org_id} has {members} enabled users or accounts")));
    }
    sqlx::query("UPDATE org SET closed = true, updated_at = now() WHERE org_id = $1")
        .bind(org_id)
        .execute(&mut *tx)
        .await?;
    let org = org_in(&mut tx, org_id).await?;
    announce_org(&mut tx, &org).await?;
    audit(&mut tx, actor, "org.closed", Some(org_id), json!({})).await?;
    tx.commit().await?;
    Ok(org)
}

/// The subtree at `root` (whole tree when `None`), in path order.
pub async fn list_orgs(pool: &PgPool, root: Option<&str>, include_closed: bool) -> Result<Vec<Org>> {
    let root_path = match root {
        Some(id) => {
            let path: Option<String> =
                sqlx::query_scalar("SELECT path FROM org WHERE org_id = $1").bind(id).fetch_optional(pool).await?;
            Some(path.ok_or_else(|| Error::NotFound(format!("org {id}")))?)
        }
        None => None,
    };
    Ok(sqlx::query_as::<_, Org>(
        "SELECT org_id, name, parent_org_id, path, closed FROM org
         WHERE ($1::text IS NULL OR starts_with(path, $1)) AND ($2 OR NOT closed) ORDER BY path",
    )
    .bind(root_path)
    .bind(include_closed)
    .fetch_all(pool)
    .await?)
}
