//! Data scope: the copies of customer-profile's assignments and identity's org tree
//! that reads of customer value are filtered by (`customer_visible`, migration 0003).

use crm_platform::auth::Visibility;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

use crate::error::Result;

/// Keeps who looks after `number`; an older assignment than the stored one changes
/// nothing (events of one customer arrive in order, but a replay may not).
pub async fn assigned(
    tx: &mut PgConnection,
    number: &str,
    home_org_id: &str,
    primary_rm_id: &str,
    related_rm_ids: &[String],
    at: OffsetDateTime,
) -> Result<()> {
    let blank = |s: &str| (!s.is_empty()).then(|| s.to_string());
    sqlx::query(
        "INSERT INTO customer_assignment (customer_number, home_org_id, primary_rm_id, related_rm_ids, updated_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (customer_number) DO UPDATE SET
             home_org_id = EXCLUDED.home_org_id, primary_rm_id = EXCLUDED.primary_rm_id,
             related_rm_ids = EXCLUDED.related_rm_ids, updated_at = EXCLUDED.updated_at
         WHERE customer_assignment.updated_at <= EXCLUDED.updated_at",
    )
    .bind(number)
    .bind(blank(home_org_id))
    .bind(blank(primary_rm_id))
    .bind(related_rm_ids)
    .bind(at)
    .execute(tx)
    .await?;
    Ok(())
}

/// Keeps org `org_id` at `path`.
pub async fn org_changed(tx: &mut PgConnection, org_id: &str, path: &str, closed: bool) -> Result<()> {
    sqlx::query(
        "INSERT INTO org_directory (org_id, path, closed) VALUES ($1, $2, $3)
         ON CONFLICT (org_id) DO UPDATE SET path = EXCLUDED.path, closed = EXCLUDED.closed, updated_at = now()",
    )
    .bind(org_id)
    .bind(path)
    .bind(closed)
    .execute(tx)
    .await?;
    Ok(())
}

/// Whether customer `number` (a survivor) lies inside `visibility`.
pub async fn visible(pool: &PgPool, number: &str, visibility: &Visibility) -> Result<bool> {
    let (scope, arg) = visibility.sql_args();
    Ok(sqlx::query_scalar("SELECT customer_visible($1, $2, $3)")
        .bind(number)
        .bind(scope)
        .bind(arg)
        .fetch_one(pool)
        .await?)
}
