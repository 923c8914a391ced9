//! A first start: on a database without any principal, the root org and the first
//! administrator, once, however many replicas start together.

use crm_platform::auth::PrincipalKind;
use serde_json::json;
use sqlx::PgPool;

use super::orgs::{Org, announce_org};
use super::principals::{NewPrincipal, set_roles};
use super::{audit, system};
use crate::domain;
use crate::error::Result;

/// Whether no user or service account exists yet (a first start).
pub async fn is_empty(pool: &PgPool) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM principal)").fetch_one(pool).await?)
}

/// On an empty database: the root org and the first administrator (a user, whatever
/// `admin.kind` says). Safe with several replicas starting at once (one advisory
/// lock; the loser finds a user and does nothing). Returns whether the administrator
/// was created.
pub async fn bootstrap(pool: &PgPool, root_org_id: &str, root_org_name: &str, admin: &NewPrincipal) -> Result<bool> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('identity.bootstrap'))").execute(&mut *tx).await?;
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM principal").fetch_one(&mut *tx).await?;
    if users > 0 {
        return Ok(false);
    }
    let system = system();
    let orgs: i64 = sqlx::query_scalar("SELECT count(*) FROM org").fetch_one(&mut *tx).await?;
    if orgs == 0 {
        let path = domain::root_path(root_org_id);
        sqlx::query("INSERT INTO org (org_id, name, path) VALUES ($1, $2, $3)")
            .bind(root_org_id)
            .bind(root_org_name)
            .bind(&path)
            .execute(&mut *tx)
            .await?;
        let org =
            Org { org_id: root_org_id.into(), name: root_org_name.into(), parent_org_id: None, path, closed: false };
        announce_org(&mut tx, &org).await?;
        audit(&mut tx, &system, "org.created", Some(root_org_id), json!({"bootstrap": true})).await?;
    }
    sqlx::query(
        "INSERT INTO principal (subject, kind, login, display_name, org_id, secret_hash) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&admin.subject)
    .bind(PrincipalKind::User)
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
