//! Segments: definitions, evaluation into snapshots (now or as of a past time), a
//! snapshot's members streamed in pages, and the membership history of a customer and
//! of a segment.

use crm_platform::FieldViolations;
use crm_platform::context::CallContext;
use crm_proto::crm::analytics::v1 as pb;
use futures::StreamExt;
use tonic::{Request, Response, Status};

use super::value::{customer_number, visible_customer};
use super::{AnalyticsApi, SnapshotStream};
use crate::error::Error;
use crate::{convert, store};

/// Customer numbers per page of `StreamSegmentSnapshot`.
const PAGE: i64 = 10_000;

/// `DefineSegment`: checked against the catalogue and the tags defined, stored as the
/// next version, audited.
pub async fn define_segment(
    api: &AnalyticsApi,
    request: Request<pb::DefineSegmentRequest>,
) -> Result<Response<pb::DefineSegmentResponse>, Status> {
    let context = CallContext::authenticated(&request)?;
    let (code, name, condition) =
        convert::segment_request(request.get_ref().segment.as_ref()).map_err(Error::Invalid)?;
    let mut tx = api.pool.begin().await.map_err(Error::from)?;
    let segment = match store::segments::define(&mut tx, &code, &name, &condition, context.actor()).await? {
        Ok(segment) => segment,
        Err(problem) => {
            let mut v = FieldViolations::new();
            v.add("segment.condition", problem.to_string());
            return Err(Error::Invalid(v).into());
        }
    };
    let wire = pb::Segment::from(&segment);
    let entry = context.audit(
        "segment.defined",
        Some(&format!("segment/{code}")),
        serde_json::json!({ "code": wire.code, "name": wire.name, "condition": wire.condition, "version": wire.version }),
    );
    crm_platform::audit::record_in(&mut tx, &[entry]).await.map_err(Error::from)?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Response::new(pb::DefineSegmentResponse { segment: Some(wire) }))
}

/// `EvaluateSegment`: the current members (kept current as customers change), or the
/// members at `as_of` from the history, kept as a snapshot.
pub async fn evaluate_segment(
    api: &AnalyticsApi,
    request: Request<pb::EvaluateSegmentRequest>,
) -> Result<Response<pb::EvaluateSegmentResponse>, Status> {
    let context = CallContext::authenticated(&request)?;
    let (code, as_of) = convert::evaluate_segment_request(request.get_ref(), time::OffsetDateTime::now_utc())
        .map_err(Error::Invalid)?;
    let mut tx = api.pool.begin().await.map_err(Error::from)?;
    let snapshot = store::segments::evaluate(&mut tx, &code, as_of, context.actor()).await?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Response::new(pb::EvaluateSegmentResponse {
        snapshot_id: snapshot.id.to_string(),
        member_count: snapshot.member_count,
        segment_version: snapshot.segment_version as i32,
    }))
}

/// `StreamSegmentSnapshot`: pages of [`PAGE`] customer numbers, in order, each read
/// when the previous one is sent.
pub async fn stream_segment_snapshot(
    api: &AnalyticsApi,
    request: Request<pb::StreamSegmentSnapshotRequest>,
) -> Result<Response<SnapshotStream>, Status> {
    let id = request.get_ref().snapshot_id.trim().parse::<uuid::Uuid>().map_err(|_| {
        let mut v = FieldViolations::new();
        v.add("snapshot_id", "must be a snapshot id (a UUID)");
        Error::Invalid(v)
    })?;
    if !store::segments::exists(&api.pool, id).await? {
        return Err(Error::NotFound(format!("snapshot {id}")).into());
    }
    let pool = api.pool.clone();
    let pages = futures::stream::unfold(Some(None::<String>), move |after| {
        let pool = pool.clone();
        async move {
            let after = after?;
            match store::segments::members(&pool, id, after.as_deref(), PAGE).await {
                Ok(page) if page.is_empty() => None,
                Ok(page) => {
                    let next = (page.len() as i64 == PAGE).then(|| page.last().cloned());
                    Some((Ok(pb::StreamSegmentSnapshotResponse { customer_numbers: page }), next))
                }
                Err(e) => Some((Err(Status::from(e)), None)),
            }
        }
    });
    Ok(Response::new(Box::pin(pages.boxed())))
}

/// `ListCustomerSegmentHistory`: the customer in the caller's data scope, every stay.
pub async fn list_customer_segment_history(
    api: &AnalyticsApi,
    request: Request<pb::ListCustomerSegmentHistoryRequest>,
) -> Result<Response<pb::ListCustomerSegmentHistoryResponse>, Status> {
    let number = customer_number(&request.get_ref().customer_number)?;
    let number = visible_customer(api, &request, &number).await?;
    let stays = store::segments::stays(&api.pool, &number).await?;
    Ok(Response::new(pb::ListCustomerSegmentHistoryResponse {
        customer_number: number,
        stays: stays.iter().map(pb::SegmentStay::from).collect(),
    }))
}

/// `ListSegmentMembershipChanges`: a page at a position of the list (the token holds
/// the position), over every customer as EvaluateSegment is.
pub async fn list_segment_membership_changes(
    api: &AnalyticsApi,
    request: Request<pb::ListSegmentMembershipChangesRequest>,
) -> Result<Response<pb::ListSegmentMembershipChangesResponse>, Status> {
    let r = convert::segment_changes_request(request.get_ref()).map_err(Error::Invalid)?;
    let page = r.page;
    let rows = store::segments::changes(&api.pool, &r.code, (r.start, r.end), (page.size, page.position())).await?;
    let next_page_token = if rows.len() as i64 == page.size {
        crm_platform::paging::token(convert::SEGMENT_CHANGES_LIST, page.position().saturating_add(page.size))
    } else {
        String::new()
    };
    Ok(Response::new(pb::ListSegmentMembershipChangesResponse {
        changes: rows.iter().map(pb::SegmentMembershipChange::from).collect(),
        next_page_token,
    }))
}
