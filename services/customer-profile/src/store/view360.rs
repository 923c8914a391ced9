//! The 360° view of a customer: golden record, sources, assignment, relationships,
//! recent history, open suspect pairs, details and extended attributes, with whether
//! the caller may see it. One statement (`view360.sql`), one round trip, since the view
//! is the platform's most frequent read; the parts that are lists come back as JSON.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use sqlx::PgPool;
use time::OffsetDateTime;

use super::parties::PartyRow;
use super::{AssignmentRow, HistoryRow, RelationshipRow, StoredCustomer, Visibility, at_micros};
use crate::error::{Error, Result};

/// Everything the 360° view shows, read in one go.
#[derive(Debug, Clone)]
pub struct Customer360 {
    /// Whether the customer lies inside the caller's data scope.
    pub visible: bool,
    /// Golden record, lineage, sources.
    pub customer: StoredCustomer,
    /// Assignment, if any.
    pub assignment: Option<AssignmentRow>,
    /// Relationships, both directions.
    pub relationships: Vec<RelationshipRow>,
    /// Latest history.
    pub recent_changes: Vec<HistoryRow>,
    /// Open suspect pairs involving the customer.
    pub open_suspect_pairs: i64,
    /// Maintained details: id, encoded `PartyDetail`, change time.
    pub details: Vec<(String, Vec<u8>, OffsetDateTime)>,
    /// Extended attributes.
    pub extended: BTreeMap<String, String>,
}

/// The 360° view of a customer (absorbed numbers resolve to the survivor), with
/// whether it lies inside `visibility`.
pub async fn customer_360(pool: &PgPool, number: &str, visibility: &Visibility) -> Result<Customer360> {
    let (scope, arg) = visibility.sql_args();
    sqlx::query_as::<_, ViewRow>(include_str!("view360.sql"))
        .bind(number)
        .bind(scope)
        .bind(arg)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("customer {number}")))?
        .into_view()
}

/// The row of `view360.sql`.
#[derive(sqlx::FromRow)]
struct ViewRow {
    #[sqlx(flatten)]
    party: PartyRow,
    visible: bool,
    source_systems: Vec<String>,
    source_ids: Vec<String>,
    assigned: bool,
    home_org_id: Option<String>,
    primary_rm_id: Option<String>,
    related_rm_ids: Vec<String>,
    assigned_at: Option<OffsetDateTime>,
    open_suspect_pairs: i64,
    /// [`RelationshipRow`]s.
    relationships: Value,
    /// [`HistoryEntry`]s, newest first.
    history: Value,
    /// `[detail id, base64 payload, updated at µs]` each.
    details: Value,
    /// Key → value.
    extended: Value,
}

/// A history entry as the view's JSON has it.
#[derive(Deserialize)]
struct HistoryEntry {
    history_id: i64,
    #[serde(default)]
    change_kind: String,
    at_us: i64,
    actor: Option<String>,
    source_system: Option<String>,
    source_customer_id: Option<String>,
    before: Option<Value>,
    after: Option<Value>,
}

fn corrupt(what: &str) -> impl Fn(serde_json::Error) -> Error + '_ {
    move |e| Error::Corrupt(format!("360 view: {what}: {e}"))
}

impl ViewRow {
    fn into_view(self) -> Result<Customer360> {
        let customer = self.party.into_customer(self.source_systems.into_iter().zip(self.source_ids).collect());
        let assignment = self.assigned.then(|| AssignmentRow {
            customer_number: customer.customer_number.clone(),
            home_org_id: self.home_org_id,
            primary_rm_id: self.primary_rm_id,
            related_rm_ids: self.related_rm_ids,
            updated_at: self.assigned_at,
        });
        let relationships = serde_json::from_value(self.relationships).map_err(corrupt("relationships"))?;
        let history: Vec<HistoryEntry> = serde_json::from_value(self.history).map_err(corrupt("history"))?;
        let recent_changes = history
            .into_iter()
            .map(|h| {
                Ok(HistoryRow::of(
                    h.history_id,
                    h.change_kind,
                    at_micros(h.at_us)?,
                    h.actor,
                    h.source_system.zip(h.source_customer_id),
                    h.before.as_ref(),
                    h.after.as_ref(),
                ))
            })
            .collect::<Result<_>>()?;
        let details: Vec<(String, String, i64)> = serde_json::from_value(self.details).map_err(corrupt("details"))?;
        let details = details
            .into_iter()
            .map(|(id, b64, us)| {
                // PostgreSQL's base64 breaks lines every 76 characters.
                let b64: String = b64.split_whitespace().collect();
                let payload = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64)
                    .map_err(|_| Error::Corrupt("360 view: detail payload".into()))?;
                Ok((id, payload, at_micros(us)?))
            })
            .collect::<Result<_>>()?;
        let extended = serde_json::from_value(self.extended).map_err(corrupt("extended attributes"))?;
        Ok(Customer360 {
            visible: self.visible,
            open_suspect_pairs: self.open_suspect_pairs,
            customer,
            assignment,
            relationships,
            recent_changes,
            details,
            extended,
        })
    }
}
