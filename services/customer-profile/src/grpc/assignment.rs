//! Assignment: which home org and RMs look after a customer. Assigning, adjusting and
//! recalling stay inside the caller's data scope; every change is kept in the
//! assignment history.

use crm_platform::FieldViolations;
use crm_platform::paging::Page;
use crm_proto::crm::customer::v1 as pb;
use tonic::{Request, Response, Status};

use super::{CustomerApi, Viewer, viewer};
use crate::convert::{self, non_empty};
use crate::domain::CustomerNumber;
use crate::error::Error;
use crate::store;

/// Most customers one request may assign or recall.
const MAX_BATCH: usize = 1000;

pub(super) async fn assign_customers(
    api: &CustomerApi,
    request: Request<pb::AssignCustomersRequest>,
) -> Result<Response<pb::AssignCustomersResponse>, Status> {
    let viewer = viewer(&request)?;
    let r = request.into_inner();
    let mut v = FieldViolations::new();
    let numbers = customer_numbers(&r.customer_numbers, &mut v);
    let related: Vec<String> = r.related_rm_ids.iter().filter_map(|s| non_empty(s)).collect();
    let change = store::AssignmentChange::Assign {
        home_org_id: non_empty(&r.home_org_id),
        primary_rm_id: non_empty(&r.primary_rm_id),
        related_rm_ids: (!related.is_empty()).then_some(related),
    };
    if let store::AssignmentChange::Assign { home_org_id: None, primary_rm_id: None, related_rm_ids: None } = change {
        v.add("home_org_id", "give a home org, a primary RM or related RMs to assign");
    }
    v.into_result().map_err(Error::Invalid)?;
    api.ensure_assignable(&viewer, &numbers, non_empty(&r.home_org_id).as_deref()).await?;
    let rows =
        store::change_assignments(&api.pool, &convert::texts(&numbers), &change, r.reason.trim(), viewer.actor())
            .await?;
    let details = serde_json::json!({
        "home_org_id": r.home_org_id.trim(), "primary_rm_id": r.primary_rm_id.trim(), "reason": r.reason.trim()
    });
    let entries: Vec<_> =
        rows.iter().map(|a| viewer.audit("customer.assign", Some(&a.customer_number), details.clone())).collect();
    api.audit(&entries).await?;
    Ok(Response::new(pb::AssignCustomersResponse { assignments: rows.iter().map(pb::Assignment::from).collect() }))
}

pub(super) async fn recall_customers(
    api: &CustomerApi,
    request: Request<pb::RecallCustomersRequest>,
) -> Result<Response<pb::RecallCustomersResponse>, Status> {
    let viewer = viewer(&request)?;
    let r = request.into_inner();
    let mut v = FieldViolations::new();
    let numbers = customer_numbers(&r.customer_numbers, &mut v);
    v.into_result().map_err(Error::Invalid)?;
    api.ensure_assignable(&viewer, &numbers, None).await?;
    let rows = store::change_assignments(
        &api.pool,
        &convert::texts(&numbers),
        &store::AssignmentChange::Recall,
        r.reason.trim(),
        viewer.actor(),
    )
    .await?;
    let details = serde_json::json!({"reason": r.reason.trim()});
    let entries: Vec<_> =
        rows.iter().map(|a| viewer.audit("customer.recall", Some(&a.customer_number), details.clone())).collect();
    api.audit(&entries).await?;
    Ok(Response::new(pb::RecallCustomersResponse { assignments: rows.iter().map(pb::Assignment::from).collect() }))
}

pub(super) async fn list_assignment_history(
    api: &CustomerApi,
    request: Request<pb::ListAssignmentHistoryRequest>,
) -> Result<Response<pb::ListAssignmentHistoryResponse>, Status> {
    let viewer = viewer(&request)?;
    let r = request.into_inner();
    let mut v = FieldViolations::new();
    let page = Page::parse("assignment-history", r.page_size, &r.page_token, &mut v);
    if r.customer_number.trim().is_empty() {
        v.add("customer_number", "is required");
    }
    v.into_result().map_err(Error::Invalid)?;
    api.visible_survivor(&viewer, r.customer_number.trim()).await?;
    let rows = store::assignment_history(&api.pool, r.customer_number.trim(), page.position(), page.size).await?;
    let next = page.next_token(&rows, |h| h.id);
    let changes = rows.into_iter().map(pb::AssignmentChange::from).collect();
    Ok(Response::new(pb::ListAssignmentHistoryResponse { changes, next_page_token: next }))
}

/// Customer numbers of a batch request: 1 to [`MAX_BATCH`], each well-formed.
fn customer_numbers(numbers: &[String], v: &mut FieldViolations) -> Vec<CustomerNumber> {
    if numbers.is_empty() || numbers.len() > MAX_BATCH {
        v.add("customer_numbers", "give between 1 and 1000 customer numbers");
    }
    let mut parsed = Vec::with_capacity(numbers.len());
    for (i, n) in numbers.iter().enumerate() {
        parsed.extend(convert::customer_number(v, format!("customer_numbers[{i}]"), n));
    }
    parsed
}

impl CustomerApi {
    /// Assignment changes stay inside the caller's data scope: every customer must be
    /// visible, and a new home org must lie inside the caller's org subtree (or be the
    /// caller's org for an org scope). An own-scope caller cannot move home orgs.
    async fn ensure_assignable(
        &self,
        viewer: &Viewer,
        numbers: &[CustomerNumber],
        home_org: Option<&str>,
    ) -> Result<(), Error> {
        for number in numbers {
            self.visible_survivor(viewer, number.as_str()).await?;
        }
        let Some(org) = home_org else { return Ok(()) };
        let allowed = match &viewer.visibility {
            store::Visibility::All => true,
            store::Visibility::Subtree(path) => store::org_within(&self.pool, org, path).await?,
            store::Visibility::Org(own) => own == org,
            store::Visibility::Own(_) => false,
        };
        if allowed { Ok(()) } else { Err(Error::OutOfScope(format!("org {org}"))) }
    }
}
