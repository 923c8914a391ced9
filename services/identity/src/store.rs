//! All SQL of identity. Every change runs in one transaction together with its audit
//! entry and, where other services must learn of it, its outbox event.

use crm_platform::auth::DataScope;
use crm_platform::messaging::outbox;
use crm_proto::crm::identity::v1 as pb;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain;
use crate::error::{Error, Result};

/// Source of this service's events.
pub const EVENT_SOURCE: &str = "crm/identity";

/// Who did something, from where: the audit trail's "who" for one call.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    /// Subject, or the login attempted for failed logins.
    pub subject: String,
    /// Peer address of the call.
    pub source_address: Option<String>,
}

/// Appends one audit entry inside `tx`.
pub async fn audit(
    tx: &mut PgConnection,
    actor: &Actor,
    action: &str,
    target: Option<&str>,
    details: Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO identity_audit (actor, action, target, source_address, details) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&actor.subject)
    .bind(action)
    .bind(target)
    .bind(&actor.source_address)
    .bind(details)
    .execute(tx)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------
// Orgs

fn org_from_row(r: &sqlx::postgres::PgRow) -> Result<pb::Org> {
    Ok(pb::Org {
        org_id: r.try_get("org_id")?,
        name: r.try_get("name")?,
        parent_org_id: r.try_get::<Option<String>, _>("parent_org_id")?.unwrap_or_default(),
        path: r.try_get("path")?,
        closed: r.try_get("closed")?,
    })
}

async fn org_in(tx: &mut PgConnection, org_id: &str) -> Result<pb::Org> {
    let row = sqlx::query("SELECT org_id, name, parent_org_id, path, closed FROM org WHERE org_id = $1 FOR UPDATE")
        .bind(org_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::NotFound(format!("org {org_id}")))?;
    org_from_row(&row)
}

async fn announce_org(tx: &mut PgConnection, org: &pb::Org) -> Result<()> {
    outbox::enqueue(tx, EVENT_SOURCE, &org.org_id, &pb::OrgChanged { org: Some(org.clone()) }, None).await?;
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
    actor: &Actor,
    org_id: &str,
    name: &str,
    parent: Option<&str>,
) -> Result<pb::Org> {
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
            let any: Option<(String,)> =
                sqlx::query_as("SELECT org_id FROM org LIMIT 1").fetch_optional(&mut *tx).await?;
            if any.is_some() {
                return Err(Error::FailedPrecondition("the root org exists; give a parent_org_id".into()));
            }
            domain::root_path(org_id)
        }
    };
    let exists: Option<(String,)> =
        sqlx::query_as("SELECT org_id FROM org WHERE org_id = $1").bind(org_id).fetch_optional(&mut *tx).await?;
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
    let org = pb::Org {
        org_id: org_id.into(),
        name: name.into(),
        parent_org_id: parent.unwrap_or_default().into(),
        path,
        closed: false,
    };
    announce_org(&mut tx, &org).await?;
    audit(&mut tx, actor, "org.created", Some(org_id), json!({"parent": parent, "path": org.path})).await?;
    tx.commit().await?;
    Ok(org)
}

/// Renames and/or moves an org; a move rewrites the whole subtree's paths and
/// announces every org whose path changed.
pub async fn update_org(
    pool: &PgPool,
    actor: &Actor,
    org_id: &str,
    name: Option<&str>,
    new_parent: Option<&str>,
) -> Result<pb::Org> {
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
    if let Some(parent_id) = new_parent.filter(|p| *p != org.parent_org_id) {
        if org.parent_org_id.is_empty() {
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
        let moved: Vec<(String,)> = sqlx::query_as(
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
        changed.extend(moved.into_iter().map(|(id,)| id));
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
pub async fn close_org(pool: &PgPool, actor: &Actor, org_id: &str) -> Result<pb::Org> {
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
pub async fn list_orgs(pool: &PgPool, root: Option<&str>, include_closed: bool) -> Result<Vec<pb::Org>> {
    let root_path = match root {
        Some(id) => {
            let path: Option<String> =
                sqlx::query_scalar("SELECT path FROM org WHERE org_id = $1").bind(id).fetch_optional(pool).await?;
            Some(path.ok_or_else(|| Error::NotFound(format!("org {id}")))?)
        }
        None => None,
    };
    let rows = sqlx::query(
        "SELECT org_id, name, parent_org_id, path, closed FROM org
         WHERE ($1::text IS NULL OR starts_with(path, $1)) AND ($2 OR NOT closed) ORDER BY path",
    )
    .bind(root_path)
    .bind(include_closed)
    .fetch_all(pool)
    .await?;
    rows.iter().map(org_from_row).collect()
}

// ---------------------------------------------------------------------------------
// Roles

fn role_from_row(r: &sqlx::postgres::PgRow) -> Result<pb::Role> {
    let scope: String = r.try_get("data_scope")?;
    Ok(pb::Role {
        code: r.try_get("code")?,
        name: r.try_get("name")?,
        permissions: r.try_get("permissions")?,
        data_scope: scope_to_pb(domain::scope_from_code(&scope).unwrap_or(DataScope::Own)) as i32,
        built_in: r.try_get("built_in")?,
    })
}

/// The proto value of a scope.
pub fn scope_to_pb(scope: DataScope) -> pb::DataScope {
    match scope {
        DataScope::Own => pb::DataScope::Own,
        DataScope::Org => pb::DataScope::Org,
        DataScope::Subtree => pb::DataScope::Subtree,
        DataScope::All => pb::DataScope::All,
    }
}

/// Creates a custom role.
pub async fn create_role(pool: &PgPool, actor: &Actor, role: &pb::Role, scope: DataScope) -> Result<pb::Role> {
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO role (code, name, permissions, data_scope) VALUES ($1, $2, $3, $4) ON CONFLICT (code) DO NOTHING",
    )
    .bind(&role.code)
    .bind(&role.name)
    .bind(&role.permissions)
    .bind(scope.as_str())
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(Error::AlreadyExists(format!("role {}", role.code)));
    }
    audit(
        &mut tx,
        actor,
        "role.created",
        Some(&role.code),
        json!({"permissions": role.permissions, "data_scope": scope.as_str()}),
    )
    .await?;
    tx.commit().await?;
    Ok(pb::Role { built_in: false, data_scope: scope_to_pb(scope) as i32, ..role.clone() })
}

/// Replaces a custom role's name, permissions and scope.
pub async fn update_role(pool: &PgPool, actor: &Actor, role: &pb::Role, scope: DataScope) -> Result<pb::Role> {
    let mut tx = pool.begin().await?;
    let current =
        sqlx::query("SELECT code, name, permissions, data_scope, built_in FROM role WHERE code = $1 FOR UPDATE")
            .bind(&role.code)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::NotFound(format!("role {}", role.code)))?;
    let before = role_from_row(&current)?;
    if before.built_in {
        return Err(Error::FailedPrecondition(format!("role {} is built in and cannot change", role.code)));
    }
    sqlx::query("UPDATE role SET name = $2, permissions = $3, data_scope = $4 WHERE code = $1")
        .bind(&role.code)
        .bind(&role.name)
        .bind(&role.permissions)
        .bind(scope.as_str())
        .execute(&mut *tx)
        .await?;
    audit(
        &mut tx,
        actor,
        "role.updated",
        Some(&role.code),
        json!({
            "before": {"permissions": before.permissions, "data_scope": before.data_scope},
            "after": {"permissions": role.permissions, "data_scope": scope.as_str()},
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(pb::Role { built_in: false, data_scope: scope_to_pb(scope) as i32, ..role.clone() })
}

/// Every role.
pub async fn list_roles(pool: &PgPool) -> Result<Vec<pb::Role>> {
    let rows = sqlx::query("SELECT code, name, permissions, data_scope, built_in FROM role ORDER BY code")
        .fetch_all(pool)
        .await?;
    rows.iter().map(role_from_row).collect()
}

async fn check_roles(tx: &mut PgConnection, codes: &[String]) -> Result<()> {
    let known: Vec<(String,)> =
        sqlx::query_as("SELECT code FROM role WHERE code = ANY($1)").bind(codes).fetch_all(&mut *tx).await?;
    if let Some(missing) = codes.iter().find(|c| !known.iter().any(|(k,)| k == *c)) {
        return Err(Error::NotFound(format!("role {missing}")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Principals (users and service accounts)

/// A new principal.
#[derive(Debug, Clone)]
pub struct NewPrincipal {
    /// User id (UUID) or client id.
    pub subject: String,
    /// `user` or `service`.
    pub kind: &'static str,
    /// Login or client id.
    pub login: String,
    /// Display name.
    pub display_name: String,
    /// Org.
    pub org_id: String,
    /// Role codes.
    pub roles: Vec<String>,
    /// argon2id hash of the password or secret.
    pub secret_hash: String,
}

async fn open_org(tx: &mut PgConnection, org_id: &str) -> Result<()> {
    let org = org_in(tx, org_id).await?;
    if org.closed {
        return Err(Error::FailedPrecondition(format!("org {org_id} is closed")));
    }
    Ok(())
}

/// Creates a user or service account.
pub async fn create_principal(pool: &PgPool, actor: &Actor, p: &NewPrincipal) -> Result<pb::User> {
    let mut tx = pool.begin().await?;
    open_org(&mut tx, &p.org_id).await?;
    check_roles(&mut tx, &p.roles).await?;
    let inserted = sqlx::query(
        "INSERT INTO principal (subject, kind, login, display_name, org_id, secret_hash) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT DO NOTHING",
    )
    .bind(&p.subject)
    .bind(p.kind)
    .bind(&p.login)
    .bind(&p.display_name)
    .bind(&p.org_id)
    .bind(&p.secret_hash)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(Error::AlreadyExists(format!("login {}", p.login)));
    }
    set_roles(&mut tx, &p.subject, &p.roles).await?;
    let action = if p.kind == "user" { "user.created" } else { "service_account.created" };
    audit(&mut tx, actor, action, Some(&p.subject), json!({"login": p.login, "org_id": p.org_id, "roles": p.roles}))
        .await?;
    let user = user_in(&mut tx, &p.subject).await?;
    tx.commit().await?;
    Ok(user)
}

async fn set_roles(tx: &mut PgConnection, subject: &str, roles: &[String]) -> Result<()> {
    sqlx::query("DELETE FROM principal_role WHERE subject = $1").bind(subject).execute(&mut *tx).await?;
    sqlx::query("INSERT INTO principal_role (subject, role_code) SELECT $1, unnest($2::text[])")
        .bind(subject)
        .bind(roles)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn user_in(tx: &mut PgConnection, subject: &str) -> Result<pb::User> {
    let row = sqlx::query(
        "SELECT p.subject, p.login, p.display_name, p.org_id, p.disabled, p.locked_until,
                coalesce(array_agg(r.role_code ORDER BY r.role_code) FILTER (WHERE r.role_code IS NOT NULL), '{}') AS roles
         FROM principal p LEFT JOIN principal_role r ON r.subject = p.subject
         WHERE p.subject = $1 GROUP BY p.subject",
    )
    .bind(subject)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::NotFound(format!("user {subject}")))?;
    let locked_until: Option<OffsetDateTime> = row.try_get("locked_until")?;
    Ok(pb::User {
        user_id: row.try_get("subject")?,
        login: row.try_get("login")?,
        display_name: row.try_get("display_name")?,
        org_id: row.try_get("org_id")?,
        role_codes: row.try_get("roles")?,
        disabled: row.try_get("disabled")?,
        locked_until: locked_until.filter(|t| *t > OffsetDateTime::now_utc()).map(crm_platform::convert::timestamp),
    })
}

/// A user by id.
pub async fn get_user(pool: &PgPool, subject: &str) -> Result<pb::User> {
    let mut conn = pool.acquire().await?;
    user_in(&mut conn, subject).await
}

/// Changes display name and/or org.
pub async fn update_user(
    pool: &PgPool,
    actor: &Actor,
    subject: &str,
    display_name: Option<&str>,
    org_id: Option<&str>,
) -> Result<pb::User> {
    let mut tx = pool.begin().await?;
    user_in(&mut tx, subject).await?;
    if let Some(org) = org_id {
        open_org(&mut tx, org).await?;
    }
    sqlx::query(
        "UPDATE principal SET display_name = coalesce($2, display_name), org_id = coalesce($3, org_id), updated_at = now()
         WHERE subject = $1",
    )
    .bind(subject)
    .bind(display_name)
    .bind(org_id)
    .execute(&mut *tx)
    .await?;
    audit(&mut tx, actor, "user.updated", Some(subject), json!({"display_name": display_name, "org_id": org_id}))
        .await?;
    let user = user_in(&mut tx, subject).await?;
    tx.commit().await?;
    Ok(user)
}

/// Replaces a principal's roles.
pub async fn assign_roles(pool: &PgPool, actor: &Actor, subject: &str, roles: &[String]) -> Result<pb::User> {
    let mut tx = pool.begin().await?;
    let before = user_in(&mut tx, subject).await?;
    check_roles(&mut tx, roles).await?;
    set_roles(&mut tx, subject, roles).await?;
    audit(&mut tx, actor, "user.roles_assigned", Some(subject), json!({"before": before.role_codes, "after": roles}))
        .await?;
    let user = user_in(&mut tx, subject).await?;
    tx.commit().await?;
    Ok(user)
}

/// Revokes every refresh token of `subject` and every access token issued until now:
/// recorded for this service's verifiers and announced to every other service.
async fn revoke_principal(tx: &mut PgConnection, actor: &Actor, subject: &str, reason: &str) -> Result<()> {
    // Token times are whole seconds: refusing tokens issued before the next second
    // also catches one issued earlier in this very second.
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or_else(|_| OffsetDateTime::now_utc())
        + time::Duration::seconds(1);
    let revoked = sqlx::query("UPDATE refresh_token SET revoked_at = now() WHERE subject = $1 AND revoked_at IS NULL")
        .bind(subject)
        .execute(&mut *tx)
        .await?;
    crm_platform::auth::revocation::record(&mut *tx, subject, now, reason).await?;
    let event = pb::PrincipalRevoked {
        subject: subject.into(),
        not_before: Some(crm_platform::convert::timestamp(now)),
        reason: reason.into(),
    };
    outbox::enqueue(&mut *tx, EVENT_SOURCE, subject, &event, Some(&actor.subject)).await?;
    audit(
        tx,
        actor,
        "token.revoked",
        Some(subject),
        json!({"reason": reason, "refresh_tokens": revoked.rows_affected()}),
    )
    .await?;
    Ok(())
}

/// Disables or enables a principal; disabling revokes its tokens.
pub async fn set_disabled(
    pool: &PgPool,
    actor: &Actor,
    subject: &str,
    disabled: bool,
    reason: &str,
) -> Result<pb::User> {
    let mut tx = pool.begin().await?;
    user_in(&mut tx, subject).await?;
    sqlx::query("UPDATE principal SET disabled = $2, updated_at = now() WHERE subject = $1")
        .bind(subject)
        .bind(disabled)
        .execute(&mut *tx)
        .await?;
    if disabled {
        revoke_principal(&mut tx, actor, subject, "user disabled").await?;
        audit(&mut tx, actor, "user.disabled", Some(subject), json!({"reason": reason})).await?;
    } else {
        audit(&mut tx, actor, "user.enabled", Some(subject), json!({})).await?;
    }
    let user = user_in(&mut tx, subject).await?;
    tx.commit().await?;
    Ok(user)
}

/// Sets a new password hash, clears any lock, revokes tokens.
pub async fn reset_password(pool: &PgPool, actor: &Actor, subject: &str, secret_hash: &str) -> Result<()> {
    let mut tx = pool.begin().await?;
    user_in(&mut tx, subject).await?;
    sqlx::query(
        "UPDATE principal SET secret_hash = $2, failed_attempts = 0, locked_until = NULL, updated_at = now()
         WHERE subject = $1",
    )
    .bind(subject)
    .bind(secret_hash)
    .execute(&mut *tx)
    .await?;
    revoke_principal(&mut tx, actor, subject, "password reset").await?;
    audit(&mut tx, actor, "user.password_reset", Some(subject), json!({})).await?;
    tx.commit().await?;
    Ok(())
}

/// Clears a lock.
pub async fn unlock(pool: &PgPool, actor: &Actor, subject: &str) -> Result<pb::User> {
    let mut tx = pool.begin().await?;
    user_in(&mut tx, subject).await?;
    sqlx::query("UPDATE principal SET failed_attempts = 0, locked_until = NULL WHERE subject = $1")
        .bind(subject)
        .execute(&mut *tx)
        .await?;
    audit(&mut tx, actor, "user.unlocked", Some(subject), json!({})).await?;
    let user = user_in(&mut tx, subject).await?;
    tx.commit().await?;
    Ok(user)
}

// ---------------------------------------------------------------------------------
// Authentication

/// What a login checks against.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Subject.
    pub subject: String,
    /// `user` / `service`.
    pub kind: String,
    /// argon2id hash.
    pub secret_hash: String,
    /// Disabled principals never log in.
    pub disabled: bool,
    /// Locked until, if locked.
    pub locked_until: Option<OffsetDateTime>,
}

/// The credentials of `login` of `kind`, if any.
pub async fn credentials(pool: &PgPool, login: &str, kind: &str) -> Result<Option<Credentials>> {
    let row = sqlx::query(
        "SELECT subject, kind, secret_hash, disabled, locked_until FROM principal WHERE login = $1 AND kind = $2",
    )
    .bind(login)
    .bind(kind)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(Credentials {
            subject: r.try_get("subject")?,
            kind: r.try_get("kind")?,
            secret_hash: r.try_get("secret_hash")?,
            disabled: r.try_get("disabled")?,
            locked_until: r.try_get("locked_until")?,
        })
    })
    .transpose()
}

/// How a failed login counts towards a lock.
#[derive(Debug, Clone, Copy)]
pub struct Lockout {
    /// Consecutive failures that lock.
    pub threshold: i32,
    /// How long the lock lasts.
    pub duration: time::Duration,
}

/// Records a failed login; with `lockout`, a wrong secret counts and the
/// `threshold`-th in a row locks the principal.
pub async fn login_failed(
    pool: &PgPool,
    actor: &Actor,
    subject: Option<&str>,
    lockout: Option<Lockout>,
    reason: &str,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    audit(&mut tx, actor, "login.failed", subject, json!({"reason": reason})).await?;
    let counted = subject.filter(|_| reason == "wrong secret").zip(lockout);
    if let Some((subject, Lockout { threshold, duration: lock_for })) = counted {
        let failed: i32 = sqlx::query_scalar("SELECT failed_attempts FROM principal WHERE subject = $1 FOR UPDATE")
            .bind(subject)
            .fetch_one(&mut *tx)
            .await?;
        let (count, lock) = domain::after_failure(failed, threshold);
        let until = lock.then(|| OffsetDateTime::now_utc() + lock_for);
        sqlx::query(
            "UPDATE principal SET failed_attempts = $2, locked_until = coalesce($3, locked_until) WHERE subject = $1",
        )
        .bind(subject)
        .bind(count)
        .bind(until)
        .execute(&mut *tx)
        .await?;
        if lock {
            audit(&mut tx, actor, "user.locked", Some(subject), json!({"until": until.map(|t| t.unix_timestamp())}))
                .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// The claims material of a principal: kind, login, org, org path, roles, permissions
/// and scope.
#[derive(Debug, Clone)]
pub struct PrincipalClaims {
    /// `user` / `service`.
    pub kind: String,
    /// Login or client id.
    pub login: String,
    /// Org id.
    pub org_id: String,
    /// Org path.
    pub org_path: String,
    /// Role codes.
    pub roles: Vec<String>,
    /// Union of permissions.
    pub perms: Vec<String>,
    /// Widest scope.
    pub scope: DataScope,
    /// Disabled principals get no tokens.
    pub disabled: bool,
}

/// Loads what goes into a principal's access token.
pub async fn principal_claims(conn: &mut PgConnection, subject: &str) -> Result<PrincipalClaims> {
    let row = sqlx::query(
        "SELECT p.kind, p.login, p.org_id, o.path, p.disabled FROM principal p JOIN org o ON o.org_id = p.org_id
         WHERE p.subject = $1",
    )
    .bind(subject)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| Error::NotFound(format!("principal {subject}")))?;
    let roles: Vec<(String, Vec<String>, String)> = sqlx::query_as(
        "SELECT r.code, r.permissions, r.data_scope FROM principal_role pr JOIN role r ON r.code = pr.role_code
         WHERE pr.subject = $1 ORDER BY r.code",
    )
    .bind(subject)
    .fetch_all(&mut *conn)
    .await?;
    let (perms, scope) = domain::combine_roles(
        roles.iter().map(|(_, p, s)| (p.as_slice(), domain::scope_from_code(s).unwrap_or(DataScope::Own))),
    );
    Ok(PrincipalClaims {
        kind: row.try_get("kind")?,
        login: row.try_get("login")?,
        org_id: row.try_get("org_id")?,
        org_path: row.try_get("path")?,
        roles: roles.into_iter().map(|(code, _, _)| code).collect(),
        perms,
        scope,
        disabled: row.try_get("disabled")?,
    })
}

/// A successful login: counter reset, a refresh token (users only), audit entries.
/// Answers the claims material.
pub async fn login_succeeded(
    pool: &PgPool,
    actor: &Actor,
    subject: &str,
    refresh: Option<(&str, OffsetDateTime)>,
    jti: &str,
) -> Result<PrincipalClaims> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE principal SET failed_attempts = 0, locked_until = NULL WHERE subject = $1")
        .bind(subject)
        .execute(&mut *tx)
        .await?;
    let claims = principal_claims(&mut tx, subject).await?;
    if let Some((hash, expires_at)) = refresh {
        sqlx::query("INSERT INTO refresh_token (token_hash, family_id, subject, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(hash)
            .bind(Uuid::new_v4())
            .bind(subject)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
    }
    audit(&mut tx, actor, "login.succeeded", Some(subject), json!({"kind": claims.kind})).await?;
    audit(
        &mut tx,
        actor,
        "token.issued",
        Some(subject),
        json!({"jti": jti, "grant": if refresh.is_some() { "password" } else { "client_credentials" }}),
    )
    .await?;
    tx.commit().await?;
    Ok(claims)
}

/// What presenting a refresh token did.
#[derive(Debug)]
pub enum Refreshed {
    /// Rotated: the principal's claims for the new access token.
    Rotated(String, PrincipalClaims),
    /// Unknown, expired or revoked.
    Refused,
    /// Spent before: the family is now revoked.
    ReuseDetected(String),
}

/// A stored refresh token: family, subject, used at, revoked at, expires at.
type RefreshRow = (Uuid, String, Option<OffsetDateTime>, Option<OffsetDateTime>, OffsetDateTime);

/// Spends `hash` and stores its successor `next` (same family), atomically.
pub async fn rotate_refresh(
    pool: &PgPool,
    actor: &Actor,
    hash: &str,
    next: &str,
    next_expires: OffsetDateTime,
    jti: &str,
) -> Result<Refreshed> {
    let mut tx = pool.begin().await?;
    let row: Option<RefreshRow> = sqlx::query_as(
        "SELECT family_id, subject, used_at, revoked_at, expires_at FROM refresh_token WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((family, subject, used_at, revoked_at, expires_at)) = row else {
        return Ok(Refreshed::Refused);
    };
    let actor = Actor { subject: subject.clone(), ..actor.clone() };
    if used_at.is_some() {
        sqlx::query("UPDATE refresh_token SET revoked_at = coalesce(revoked_at, now()) WHERE family_id = $1")
            .bind(family)
            .execute(&mut *tx)
            .await?;
        audit(&mut tx, &actor, "token.reuse_detected", Some(&subject), json!({"family": family})).await?;
        audit(&mut tx, &actor, "token.revoked", Some(&subject), json!({"family": family, "reason": "reuse detected"}))
            .await?;
        tx.commit().await?;
        return Ok(Refreshed::ReuseDetected(subject));
    }
    if revoked_at.is_some() || expires_at <= OffsetDateTime::now_utc() {
        return Ok(Refreshed::Refused);
    }
    let claims = principal_claims(&mut tx, &subject).await?;
    if claims.disabled {
        return Ok(Refreshed::Refused);
    }
    sqlx::query("UPDATE refresh_token SET used_at = now() WHERE token_hash = $1").bind(hash).execute(&mut *tx).await?;
    sqlx::query("INSERT INTO refresh_token (token_hash, family_id, subject, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(next)
        .bind(family)
        .bind(&subject)
        .bind(next_expires)
        .execute(&mut *tx)
        .await?;
    audit(&mut tx, &actor, "token.issued", Some(&subject), json!({"jti": jti, "grant": "refresh_token"})).await?;
    tx.commit().await?;
    Ok(Refreshed::Rotated(subject, claims))
}

/// Revokes the family of a refresh token (logout). Unknown tokens are ignored.
pub async fn logout(pool: &PgPool, actor: &Actor, hash: &str) -> Result<()> {
    let mut tx = pool.begin().await?;
    let row: Option<(Uuid, String)> =
        sqlx::query_as("SELECT family_id, subject FROM refresh_token WHERE token_hash = $1")
            .bind(hash)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some((family, subject)) = row {
        sqlx::query("UPDATE refresh_token SET revoked_at = coalesce(revoked_at, now()) WHERE family_id = $1")
            .bind(family)
            .execute(&mut *tx)
            .await?;
        let actor = Actor { subject: subject.clone(), ..actor.clone() };
        audit(&mut tx, &actor, "token.revoked", Some(&subject), json!({"family": family, "reason": "logout"})).await?;
    }
    tx.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------
// Signing keys

/// A stored signing key.
#[derive(Debug, Clone)]
pub struct StoredKey {
    /// Key id.
    pub kid: String,
    /// Encrypted seed.
    pub seed_encrypted: String,
    /// Public key.
    pub public_key: Vec<u8>,
    /// When it stopped signing.
    pub retired_at: Option<OffsetDateTime>,
}

/// The current signing key, if any.
pub async fn current_key(pool: &PgPool) -> Result<Option<StoredKey>> {
    let row: Option<(String, String, Vec<u8>)> =
        sqlx::query_as("SELECT kid, seed_encrypted, public_key FROM signing_key WHERE retired_at IS NULL")
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(kid, seed_encrypted, public_key)| StoredKey { kid, seed_encrypted, public_key, retired_at: None }))
}

/// Retires the current key (if any) and makes `key` current. With `first_only`, does
/// nothing when a current key exists (replicas starting together create one key);
/// answers whether `key` became current.
pub async fn rotate_key(pool: &PgPool, actor: Option<&Actor>, key: &StoredKey, first_only: bool) -> Result<bool> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('identity.signing_key'))").execute(&mut *tx).await?;
    if first_only {
        let current: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM signing_key WHERE retired_at IS NULL)")
            .fetch_one(&mut *tx)
            .await?;
        if current {
            return Ok(false);
        }
    }
    let retired: Option<(String,)> =
        sqlx::query_as("UPDATE signing_key SET retired_at = now() WHERE retired_at IS NULL RETURNING kid")
            .fetch_optional(&mut *tx)
            .await?;
    sqlx::query("INSERT INTO signing_key (kid, seed_encrypted, public_key) VALUES ($1, $2, $3)")
        .bind(&key.kid)
        .bind(&key.seed_encrypted)
        .bind(&key.public_key)
        .execute(&mut *tx)
        .await?;
    let system = Actor { subject: "system".into(), source_address: None };
    audit(
        &mut tx,
        actor.unwrap_or(&system),
        "signing_key.rotated",
        Some(&key.kid),
        json!({"retired": retired.map(|(k,)| k)}),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Keys whose tokens may still be unexpired: current, and retired within `horizon`.
pub async fn verification_keys(pool: &PgPool, horizon: time::Duration) -> Result<Vec<StoredKey>> {
    let since = OffsetDateTime::now_utc() - horizon;
    let rows: Vec<(String, Vec<u8>, Option<OffsetDateTime>)> = sqlx::query_as(
        "SELECT kid, public_key, retired_at FROM signing_key WHERE retired_at IS NULL OR retired_at > $1
         ORDER BY created_at DESC",
    )
    .bind(since)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(kid, public_key, retired_at)| StoredKey { kid, seed_encrypted: String::new(), public_key, retired_at })
        .collect())
}

// ---------------------------------------------------------------------------------
// Bootstrap

/// Whether no user or service account exists yet (a first start).
pub async fn is_empty(pool: &PgPool) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM principal)").fetch_one(pool).await?)
}

/// On an empty database: the root org and the first administrator. Safe with several
/// replicas starting at once (one advisory lock; the loser finds a user and does
/// nothing). Returns whether the administrator was created.
pub async fn bootstrap(pool: &PgPool, root_org_id: &str, root_org_name: &str, admin: &NewPrincipal) -> Result<bool> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('identity.bootstrap'))").execute(&mut *tx).await?;
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM principal").fetch_one(&mut *tx).await?;
    if users > 0 {
        return Ok(false);
    }
    let system = Actor { subject: "system".into(), source_address: None };
    let orgs: i64 = sqlx::query_scalar("SELECT count(*) FROM org").fetch_one(&mut *tx).await?;
    if orgs == 0 {
        let path = domain::root_path(root_org_id);
        sqlx::query("INSERT INTO org (org_id, name, path) VALUES ($1, $2, $3)")
            .bind(root_org_id)
            .bind(root_org_name)
            .bind(&path)
            .execute(&mut *tx)
            .await?;
        let org = pb::Org { org_id: root_org_id.into(), name: root_org_name.into(), path, ..Default::default() };
        announce_org(&mut tx, &org).await?;
        audit(&mut tx, &system, "org.created", Some(root_org_id), json!({"bootstrap": true})).await?;
    }
    sqlx::query(
        "INSERT INTO principal (subject, kind, login, display_name, org_id, secret_hash) VALUES ($1, 'user', $2, $3, $4, $5)",
    )
    .bind(&admin.subject)
    .bind(&admin.login)
    .bind(&admin.display_name)
    .bind(&admin.org_id)
    .bind(&admin.secret_hash)
    .execute(&mut *tx)
    .await?;
    set_roles(&mut tx, &admin.subject, &admin.roles).await?;
    audit(&mut tx, &system, "user.created", Some(&admin.subject), json!({"login": admin.login, "bootstrap": true}))
        .await?;
    tx.commit().await?;
    Ok(true)
}

// ---------------------------------------------------------------------------------
// Audit trail

/// Audit events, newest first, before `before` (0 = newest), filtered.
pub async fn list_audit(
    pool: &PgPool,
    actor: Option<&str>,
    action: Option<&str>,
    before: i64,
    limit: i64,
) -> Result<Vec<pb::AuditEvent>> {
    let rows = sqlx::query(
        "SELECT audit_id, occurred_at, actor, action, target, source_address, details FROM identity_audit
         WHERE ($1::text IS NULL OR actor = $1) AND ($2::text IS NULL OR action = $2) AND ($3 = 0 OR audit_id < $3)
         ORDER BY audit_id DESC LIMIT $4",
    )
    .bind(actor)
    .bind(action)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let at: OffsetDateTime = r.try_get("occurred_at")?;
            let details: Value = r.try_get("details")?;
            Ok(pb::AuditEvent {
                audit_id: r.try_get("audit_id")?,
                occurred_at: Some(prost_types::Timestamp {
                    seconds: at.unix_timestamp(),
                    nanos: at.nanosecond() as i32,
                }),
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                target: r.try_get::<Option<String>, _>("target")?.unwrap_or_default(),
                source_address: r.try_get::<Option<String>, _>("source_address")?.unwrap_or_default(),
                details: details.to_string(),
            })
        })
        .collect()
}
