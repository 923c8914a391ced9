//! Relationships between customers (kind and role, e.g. a corporate's legal
//! representative), recorded idempotently and read in both directions. On a merge
//! they follow the survivor ([`super::parties`]).

use sqlx::PgPool;

use super::{customer_by_number, customer_number_of_pool};
use crate::error::{Error, Result};

/// A relationship as seen from one customer.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Deserialize)]
pub struct RelationshipRow {
    /// Kind code.
    pub kind: String,
    /// The other customer.
    pub related_customer_number: String,
    /// Its golden name.
    pub related_name: String,
    /// Role.
    pub role: String,
    /// This customer is the object of the relationship.
    pub inverse: bool,
}

/// The surviving party of a customer number.
async fn active_party(pool: &PgPool, number: &str) -> Result<i64> {
    let customer = customer_by_number(pool, number).await?;
    Ok(sqlx::query_scalar("SELECT party_id FROM party WHERE customer_number = $1")
        .bind(&customer.customer_number)
        .fetch_one(pool)
        .await?)
}

/// Records a relationship (idempotent).
pub async fn add_relationship(
    pool: &PgPool,
    number: &str,
    kind: &str,
    related: &str,
    role: &str,
    actor: Option<&str>,
) -> Result<RelationshipRow> {
    let party = active_party(pool, number).await?;
    let other = active_party(pool, related).await?;
    if party == other {
        return Err(Error::FailedPrecondition(format!("{number} and {related} are the same customer")));
    }
    sqlx::query(
        "INSERT INTO party_relationship (party_id, kind, related_party_id, role, actor) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT DO NOTHING",
    )
    .bind(party)
    .bind(kind)
    .bind(other)
    .bind(role)
    .bind(actor)
    .execute(pool)
    .await?;
    let found = relationships(pool, party).await?;
    let other_number = customer_number_of_pool(pool, other).await?;
    found
        .into_iter()
        .find(|r| !r.inverse && r.kind == kind && r.related_customer_number == other_number && r.role == role)
        .ok_or_else(|| Error::Corrupt("relationship vanished".into()))
}

/// Relationships of a party, both directions.
pub async fn relationships(pool: &PgPool, party_id: i64) -> Result<Vec<RelationshipRow>> {
    Ok(sqlx::query_as::<_, RelationshipRow>(
        "SELECT kind, role, inverse, related_customer_number, related_name FROM party_relationships($1)
         ORDER BY kind, related_customer_number, role",
    )
    .bind(party_id)
    .fetch_all(pool)
    .await?)
}
