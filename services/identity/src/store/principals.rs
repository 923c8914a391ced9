//! Principals (`principal`, `principal_role`): staff users and service accounts (other
//! bank systems), each in one open org with a set of roles. Disabling a principal or
//! resetting its password revokes its tokens ([`super::revocations`]).

use crm_platform::auth::PrincipalKind;
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

use super::orgs::open_org;
use super::revocations::revoke_principal;
use super::roles::check_roles;
use super::{CallContext, audit};
use crate::error::{Error, Result};

/// A new principal.
#[derive(Debug, Clone)]
pub struct NewPrincipal {
    /// User id (UUID) or client id.
    pub subject: String,
    /// User or service account.
    pub kind: PrincipalKind,
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

/// A user or service account as stored, with its roles (on the wire: a `User`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Principal {
    /// User id (UUID) or client id: what tokens name.
    pub subject: String,
    /// Login or client id.
    pub login: String,
    /// Display name.
    pub display_name: String,
    /// Org.
    pub org_id: String,
    /// Role codes, sorted.
    pub role_codes: Vec<String>,
    /// Disabled principals never log in.
    pub disabled: bool,
    /// Last lock set by failed logins; it may have expired already.
    pub locked_until: Option<OffsetDateTime>,
}

/// Creates a user or service account.
pub async fn create_principal(pool: &PgPool, actor: &CallContext, p: &NewPrincipal) -> Result<Principal> {
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
    let action = match p.kind {
        PrincipalKind::User => "user.created",
        PrincipalKind::Service => "service_account.created",
    };
    audit(&mut tx, actor, action, Some(&p.subject), json!({"login": p.login, "org_id": p.org_id, "roles": p.roles}))
        .await?;
    let user = principal_in(&mut tx, &p.subject).await?;
    tx.commit().await?;
    Ok(user)
}

/// Replaces the roles of `subject` inside `tx` (codes already checked).
pub(super) async fn set_roles(tx: &mut PgConnection, subject: &str, roles: &[String]) -> Result<()> {
    sqlx::query("DELETE FROM principal_role WHERE subject = $1").bind(subject).execute(&mut *tx).await?;
    sqlx::query("INSERT INTO principal_role (subject, role_code) SELECT $1, unnest($2::text[])")
        .bind(subject)
        .bind(roles)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn principal_in(tx: &mut PgConnection, subject: &str) -> Result<Principal> {
    sqlx::query_as::<_, Principal>(
        "SELECT p.subject, p.login, p.display_name, p.org_id, p.disabled, p.locked_until,
                coalesce(array_agg(r.role_code ORDER BY r.role_code) FILTER (WHERE r.role_code IS NOT NULL), '{}')
                  AS role_codes
         FROM principal p LEFT JOIN principal_role r ON r.subject = p.subject
         WHERE p.subject = $1 GROUP BY p.subject",
    )
    .bind(subject)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::NotFound(format!("user {subject}")))
}

/// A user or service account by subject.
pub async fn get_user(pool: &PgPool, subject: &str) -> Result<Principal> {
    let mut conn = pool.acquire().await?;
    principal_in(&mut conn, subject).await
}

/// Changes display name and/or org.
pub async fn update_user(
    pool: &PgPool,
    actor: &CallContext,
    subject: &str,
    display_name: Option<&str>,
    org_id: Option<&str>,
) -> Result<Principal> {
    let mut tx = pool.begin().await?;
    principal_in(&mut tx, subject).await?;
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
    let user = principal_in(&mut tx, subject).await?;
    tx.commit().await?;
    Ok(user)
}

/// Replaces a principal's roles.
pub async fn assign_roles(pool: &PgPool, actor: &CallContext, subject: &str, roles: &[String]) -> Result<Principal> {
    let mut tx = pool.begin().await?;
    let before = principal_in(&mut tx, subject).await?;
    check_roles(&mut tx, roles).await?;
    set_roles(&mut tx, subject, roles).await?;
    audit(&mut tx, actor, "user.roles_assigned", Some(subject), json!({"before": before.role_codes, "after": roles}))
        .await?;
    let user = principal_in(&mut tx, subject).await?;
    tx.commit().await?;
    Ok(user)
}

/// Disables or enables a principal; disabling revokes its tokens.
pub async fn set_disabled(
    pool: &PgPool,
    actor: &CallContext,
    subject: &str,
    disabled: bool,
    reason: &str,
) -> Result<Principal> {
    let mut tx = pool.begin().await?;
    principal_in(&mut tx, subject).await?;
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
    let user = principal_in(&mut tx, subject).await?;
    tx.commit().await?;
    Ok(user)
}

/// Sets a new password hash, clears any lock, revokes tokens.
pub async fn reset_password(pool: &PgPool, actor: &CallContext, subject: &str, secret_hash: &str) -> Result<()> {
    let mut tx = pool.begin().await?;
    principal_in(&mut tx, subject).await?;
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
pub async fn unlock(pool: &PgPool, actor: &CallContext, subject: &str) -> Result<Principal> {
    let mut tx = pool.begin().await?;
    principal_in(&mut tx, subject).await?;
    sqlx::query("UPDATE principal SET failed_attempts = 0, locked_until = NULL WHERE subject = $1")
        .bind(subject)
        .execute(&mut *tx)
        .await?;
    audit(&mut tx, actor, "user.unlocked", Some(subject), json!({})).await?;
    let user = principal_in(&mut tx, subject).await?;
    tx.commit().await?;
    Ok(user)
}
