//! Roles (`role`): a named set of permissions and a data scope. The built-in roles of
//! docs/auth.md come with the migrations and never change; custom roles are created
//! and replaced through the admin API.

use crm_platform::auth::DataScope;
use serde_json::json;
use sqlx::{PgConnection, PgPool};

use super::{CallContext, audit};
use crate::error::{Error, Result};

/// A role as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Role {
    /// Upper-case code, e.g. `RM`, `BRANCH_AUDITOR`.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Permission names, sorted, without duplicates.
    pub permissions: Vec<String>,
    /// How much customer data its holders see.
    pub data_scope: DataScope,
    /// Shipped with identity; cannot be changed.
    pub built_in: bool,
}

/// Creates a custom role (`role.built_in` is ignored: it is not).
pub async fn create_role(pool: &PgPool, actor: &CallContext, role: &Role) -> Result<Role> {
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO role (code, name, permissions, data_scope) VALUES ($1, $2, $3, $4) ON CONFLICT (code) DO NOTHING",
    )
    .bind(&role.code)
    .bind(&role.name)
    .bind(&role.permissions)
    .bind(role.data_scope)
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
        json!({"permissions": role.permissions, "data_scope": role.data_scope.as_str()}),
    )
    .await?;
    tx.commit().await?;
    Ok(Role { built_in: false, ..role.clone() })
}

/// Replaces a custom role's name, permissions and scope.
pub async fn update_role(pool: &PgPool, actor: &CallContext, role: &Role) -> Result<Role> {
    let mut tx = pool.begin().await?;
    let before = sqlx::query_as::<_, Role>(
        "SELECT code, name, permissions, data_scope, built_in FROM role WHERE code = $1 FOR UPDATE",
    )
    .bind(&role.code)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::NotFound(format!("role {}", role.code)))?;
    if before.built_in {
        return Err(Error::FailedPrecondition(format!("role {} is built in and cannot change", role.code)));
    }
    sqlx::query("UPDATE role SET name = $2, permissions = $3, data_scope = $4 WHERE code = $1")
        .bind(&role.code)
        .bind(&role.name)
        .bind(&role.permissions)
        .bind(role.data_scope)
        .execute(&mut *tx)
        .await?;
    // The scope before the change is recorded as its number in the wire enum, the
    // one after by name: what this entry has always held (readers may rely on it).
    let before_scope = crate::convert::scope_to_pb(before.data_scope) as i32;
    audit(
        &mut tx,
        actor,
        "role.updated",
        Some(&role.code),
        json!({
            "before": {"permissions": before.permissions, "data_scope": before_scope},
            "after": {"permissions": role.permissions, "data_scope": role.data_scope.as_str()},
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(Role { built_in: false, ..role.clone() })
}

/// Every role, by code.
pub async fn list_roles(pool: &PgPool) -> Result<Vec<Role>> {
    Ok(sqlx::query_as::<_, Role>("SELECT code, name, permissions, data_scope, built_in FROM role ORDER BY code")
        .fetch_all(pool)
        .await?)
}

/// Checks that every role in `codes` exists.
pub(super) async fn check_roles(tx: &mut PgConnection, codes: &[String]) -> Result<()> {
    let known: Vec<String> =
        sqlx::query_scalar("SELECT code FROM role WHERE code = ANY($1)").bind(codes).fetch_all(&mut *tx).await?;
    if let Some(missing) = codes.iter().find(|c| !known.contains(c)) {
        return Err(Error::NotFound(format!("role {missing}")));
    }
    Ok(())
}
