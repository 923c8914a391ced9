//! Logins: the credentials a password or client-credential login is checked against,
//! the consecutive-failure count that locks a user, and what a successful login
//! records (counter reset, a refresh token for users, audit entries). Also the claims
//! material every access token is built from, read fresh at each issue.

use crm_platform::auth::{DataScope, PrincipalKind};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{CallContext, audit, refresh_tokens};
use crate::domain::{self, LoginRefusal};
use crate::error::{Error, Result};

/// What a login checks against.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Credentials {
    /// Subject.
    pub subject: String,
    /// User or service account.
    pub kind: PrincipalKind,
    /// argon2id hash.
    pub secret_hash: String,
    /// Disabled principals never log in.
    pub disabled: bool,
    /// Locked until, if locked.
    pub locked_until: Option<OffsetDateTime>,
}

/// The credentials of `login` of `kind`, if any.
pub async fn credentials(pool: &PgPool, login: &str, kind: PrincipalKind) -> Result<Option<Credentials>> {
    Ok(sqlx::query_as::<_, Credentials>(
        "SELECT subject, kind, secret_hash, disabled, locked_until FROM principal WHERE login = $1 AND kind = $2",
    )
    .bind(login)
    .bind(kind)
    .fetch_optional(pool)
    .await?)
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
    actor: &CallContext,
    subject: Option<&str>,
    lockout: Option<Lockout>,
    reason: LoginRefusal,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    audit(&mut tx, actor, "login.failed", subject, json!({"reason": reason.as_str()})).await?;
    let counted = subject.filter(|_| reason.counts_toward_lock()).zip(lockout);
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
    /// User or service account.
    pub kind: PrincipalKind,
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

/// A principal with its org's path, as a token names it.
#[derive(Debug, sqlx::FromRow)]
struct PrincipalRow {
    kind: PrincipalKind,
    login: String,
    org_id: String,
    org_path: String,
    disabled: bool,
}

/// One role held by a principal.
#[derive(Debug, sqlx::FromRow)]
struct HeldRole {
    code: String,
    permissions: Vec<String>,
    data_scope: DataScope,
}

/// Loads what goes into a principal's access token.
pub async fn principal_claims(conn: &mut PgConnection, subject: &str) -> Result<PrincipalClaims> {
    let principal = sqlx::query_as::<_, PrincipalRow>(
        "SELECT p.kind, p.login, p.org_id, o.path AS org_path, p.disabled FROM principal p
         JOIN org o ON o.org_id = p.org_id WHERE p.subject = $1",
    )
    .bind(subject)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| Error::NotFound(format!("principal {subject}")))?;
    let roles = sqlx::query_as::<_, HeldRole>(
        "SELECT r.code, r.permissions, r.data_scope FROM principal_role pr JOIN role r ON r.code = pr.role_code
         WHERE pr.subject = $1 ORDER BY r.code",
    )
    .bind(subject)
    .fetch_all(&mut *conn)
    .await?;
    let (perms, scope) = domain::combine_roles(roles.iter().map(|r| (r.permissions.as_slice(), r.data_scope)));
    Ok(PrincipalClaims {
        kind: principal.kind,
        login: principal.login,
        org_id: principal.org_id,
        org_path: principal.org_path,
        roles: roles.into_iter().map(|r| r.code).collect(),
        perms,
        scope,
        disabled: principal.disabled,
    })
}

/// A successful login: counter reset, a refresh token (users only), audit entries.
/// Answers the claims material.
pub async fn login_succeeded(
    pool: &PgPool,
    actor: &CallContext,
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
        refresh_tokens::insert(&mut tx, hash, Uuid::new_v4(), subject, expires_at).await?;
    }
    audit(&mut tx, actor, "login.succeeded", Some(subject), json!({"kind": claims.kind.as_str()})).await?;
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
