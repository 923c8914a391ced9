//! Data stewardship: the work list of suspect pairs (customers with the same ID type and number
//! but different names) and a steward's decision on a pair, which merges the two or
//! keeps them apart for good.

use crm_platform::FieldViolations;
use crm_platform::paging::Page;
use crm_proto::crm::customer::v1 as pb;
use tonic::{Request, Response, Status};

use super::{CustomerApi, viewer};
use crate::convert::{self, from_wire};
use crate::domain::SuspectStatus;
use crate::error::Error;
use crate::store;

pub(super) async fn list_suspect_pairs(
    api: &CustomerApi,
    request: Request<pb::ListSuspectPairsRequest>,
) -> Result<Response<pb::ListSuspectPairsResponse>, Status> {
    let viewer = viewer(&request)?;
    let r = request.into_inner();
    let mut v = FieldViolations::new();
    let page = Page::parse("suspect-pairs", r.page_size, &r.page_token, &mut v);
    v.into_result().map_err(Error::Invalid)?;
    let rows = store::open_suspects(&api.pool, page.position(), page.size, &viewer.visibility).await?;
    let next = page.next_token(&rows, |s| s.id);
    let reveal = api.reveal(&viewer);
    let suspect_pairs = rows.into_iter().map(|s| convert::suspect_pair(s, reveal)).collect();
    Ok(Response::new(pb::ListSuspectPairsResponse { suspect_pairs, next_page_token: next }))
}

pub(super) async fn resolve_suspect_pair(
    api: &CustomerApi,
    request: Request<pb::ResolveSuspectPairRequest>,
) -> Result<Response<pb::ResolveSuspectPairResponse>, Status> {
    let viewer = viewer(&request)?;
    let r = request.into_inner();
    let mut v = FieldViolations::new();
    let id = r.suspect_pair_id.parse::<i64>().ok();
    if id.is_none() {
        v.add("suspect_pair_id", "is not a suspect pair id");
    }
    let decision = from_wire::<pb::SuspectResolution, SuspectStatus>(r.resolution);
    if decision.is_none() {
        v.add("resolution", "must be SAME_PARTY or DIFFERENT_PARTIES");
    }
    let (Some(id), Some(decision)) = (id, decision) else {
        return Err(Error::Invalid(v).into());
    };
    let same = decision == SuspectStatus::SameParty;
    let number = store::resolve_suspect(&api.pool, &api.trust, id, same, viewer.actor()).await?;
    api.audit(&[viewer.audit(
        "customer.resolve_suspect",
        Some(&number),
        serde_json::json!({"suspect_pair_id": id, "same_party": same}),
    )])
    .await?;
    Ok(Response::new(pb::ResolveSuspectPairResponse { customer_number: number }))
}
