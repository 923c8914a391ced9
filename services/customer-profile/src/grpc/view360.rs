//! The 360° view: everything known about one customer in one answer, with analytics'
//! value card when it answers in time ([`crate::value_card`]). A full view is audited
//! before it leaves.

use crm_platform::FieldViolations;
use crm_proto::crm::customer::v1 as pb;
use tonic::{Request, Response, Status};

use super::{CustomerApi, details, viewer};
use crate::convert;
use crate::domain;
use crate::error::Error;
use crate::store;

pub(super) async fn get_customer360(
    api: &CustomerApi,
    request: Request<pb::GetCustomer360Request>,
) -> Result<Response<pb::GetCustomer360Response>, Status> {
    let viewer = viewer(&request)?;
    let r = request.into_inner();
    if r.customer_number.trim().is_empty() {
        let mut v = FieldViolations::new();
        v.add("customer_number", "is required");
        return Err(Error::Invalid(v).into());
    }
    // The value card is asked for while the view is read, so its deadline adds nothing
    // to a view that takes as long.
    let (view, (value_card, value_card_status)) = tokio::join!(
        store::customer_360(&api.pool, r.customer_number.trim(), &viewer.visibility),
        api.value_cards.of(r.customer_number.trim()),
    );
    let view = view?;
    if !view.visible {
        return Err(Error::OutOfScope(format!("customer {}", view.customer.customer_number)).into());
    }
    // Audited before anything is returned: no full view leaves without its record.
    api.audit(&[viewer.audit(
        "customer.view_360",
        Some(&view.customer.customer_number),
        serde_json::json!({"requested": r.customer_number.trim(), "full_pii": viewer.full_pii}),
    )])
    .await?;
    let mut party_details = Vec::new();
    for (detail_id, payload, updated_at) in &view.details {
        let detail = details::decode(detail_id, payload, *updated_at)?;
        party_details.push(details::reveal(&api.pii, detail, viewer.full_pii));
    }
    let asset_totals = domain::details::asset_totals(party_details.iter().filter_map(|d| match &d.detail {
        Some(pb::party_detail::Detail::FamilyAsset(a)) => Some(a),
        _ => None,
    }));
    Ok(Response::new(pb::GetCustomer360Response {
        details: party_details,
        asset_totals,
        extended_attributes: view.extended.into_iter().collect(),
        customer: Some(convert::customer(view.customer, api.reveal(&viewer))),
        assignment: view.assignment.as_ref().map(pb::Assignment::from),
        relationships: view.relationships.into_iter().map(pb::Relationship::from).collect(),
        recent_changes: view.recent_changes.into_iter().map(pb::CustomerChange::from).collect(),
        open_suspect_pairs: view.open_suspect_pairs as i32,
        value_card,
        value_card_status: value_card_status as i32,
    }))
}
