//! Relationships between customers: person ↔ company roles, group parent and
//! subsidiary, shared legal representatives, family.

use crm_platform::FieldViolations;
use crm_proto::crm::customer::v1 as pb;
use tonic::{Request, Response, Status};

use super::{CustomerApi, viewer};
use crate::convert::{self, from_wire};
use crate::domain::RelationshipKind;
use crate::error::Error;
use crate::store;

/// Longest role, in characters.
const MAX_ROLE: usize = 64;

pub(super) async fn add_relationship(
    api: &CustomerApi,
    request: Request<pb::AddRelationshipRequest>,
) -> Result<Response<pb::AddRelationshipResponse>, Status> {
    let viewer = viewer(&request)?;
    let r = request.into_inner();
    let mut v = FieldViolations::new();
    let number = convert::customer_number(&mut v, "customer_number", &r.customer_number);
    let related = convert::customer_number(&mut v, "related_customer_number", &r.related_customer_number);
    let kind = from_wire::<pb::RelationshipKind, RelationshipKind>(r.kind);
    if kind.is_none() {
        v.add("kind", "must be a known relationship kind");
    }
    if r.role.chars().count() > MAX_ROLE {
        v.add("role", "must be at most 64 characters");
    }
    let (Some(number), Some(related), Some(kind), true) = (number, related, kind, v.is_empty()) else {
        return Err(Error::Invalid(v).into());
    };
    for n in [&number, &related] {
        api.visible_survivor(&viewer, n.as_str()).await?;
    }
    let row = store::add_relationship(
        &api.pool,
        number.as_str(),
        kind.code(),
        related.as_str(),
        &r.role.trim().to_ascii_uppercase(),
        viewer.actor(),
    )
    .await?;
    api.audit(&[viewer.audit(
        "customer.add_relationship",
        Some(number.as_str()),
        serde_json::json!({"kind": kind.code(), "related_customer_number": related.as_str()}),
    )])
    .await?;
    Ok(Response::new(pb::AddRelationshipResponse { relationship: Some(row.into()) }))
}
