//! SQL of data scope and the org directory. (The access audit trail is the kit's:
//! `crm_platform::audit`.)

use sqlx::{PgConnection, PgPool};

use crate::error::Result;

/// Which customers a caller may see (the kit's), as `party_visible` (migration 0006)
/// filters them.
pub use crm_platform::auth::Visibility;

/// Whether the party with this customer number is inside `visibility` (pass the
/// survivor's number: absorbed parties have no assignment of their own). `None` when
/// there is no such customer.
pub async fn customer_visible(pool: &PgPool, number: &str, visibility: &Visibility) -> Result<Option<bool>> {
    let (scope, arg) = visibility.sql_args();
    let row: Option<(bool,)> = sqlx::query_as(
        "SELECT party_visible(p.party_id, $2, $3)
         FROM party p WHERE p.customer_number = $1",
    )
    .bind(number)
    .bind(scope)
    .bind(arg)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(v,)| v))
}

/// Whether an org lies inside an org path (the org itself counts), by the directory.
pub async fn org_within(pool: &PgPool, org_id: &str, path: &str) -> Result<bool> {
    let own = path.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    if own == org_id {
        return Ok(true);
    }
    let row: Option<(bool,)> = sqlx::query_as("SELECT starts_with(path, $2) FROM org_directory WHERE org_id = $1")
        .bind(org_id)
        .bind(path)
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some_and(|(v,)| v))
}

/// Records an org's current path (from identity's `OrgChanged`).
pub async fn upsert_org(tx: &mut PgConnection, org_id: &str, path: &str, closed: bool) -> Result<()> {
    sqlx::query(
        "INSERT INTO org_directory (org_id, path, closed) VALUES ($1, $2, $3)
         ON CONFLICT (org_id) DO UPDATE SET path = excluded.path, closed = excluded.closed, updated_at = now()",
    )
    .bind(org_id)
    .bind(path)
    .bind(closed)
    .execute(tx)
    .await?;
    Ok(())
}
