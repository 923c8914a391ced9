//! Business targets: issued to an org, decomposed down the org tree to sub-orgs and
//! RMs, listed and measured inside the caller's data scope.

use crm_platform::auth::Visibility;
use crm_platform::context::CallContext;
use crm_proto::crm::analytics::v1 as pb;
use tonic::{Request, Response, Status};

use super::AnalyticsApi;
use crate::domain::targets::Assignee;
use crate::error::Error;
use crate::store::targets::StoredTarget;
use crate::{convert, store};

/// The audit details of a target.
fn details(t: &StoredTarget) -> serde_json::Value {
    let (kind, code) = t.target.indicator.stored();
    serde_json::json!({
        "root": t.root_id.to_string(),
        "assignee": t.target.assignee,
        "indicator": kind,
        "code": code,
        "period": t.target.period,
        "value": t.target.value,
    })
}

/// `IssueTarget`: checked, inside the caller's scope, stored as a new tree, audited.
pub async fn issue_target(
    api: &AnalyticsApi,
    request: Request<pb::IssueTargetRequest>,
) -> Result<Response<pb::IssueTargetResponse>, Status> {
    let context = CallContext::authenticated(&request)?;
    let visibility = Visibility::of(crm_platform::auth::caller(&request)?);
    let target = convert::issued_target(request.get_ref()).map_err(Error::Invalid)?;
    let Assignee::Org(org) = &target.assignee else { return Err(Error::Corrupt("an issued RM target".into()).into()) };
    let mut tx = api.pool.begin().await.map_err(Error::from)?;
    if !store::targets::visible(&mut *tx, org, None, &visibility).await? {
        return Err(Error::OutOfScope(format!("org {}", org.as_str())).into());
    }
    let stored = store::targets::issue(&mut tx, &target, context.actor()).await?;
    let entry = context.audit("target.issued", Some(&format!("target/{}", stored.id)), details(&stored));
    crm_platform::audit::record_in(&mut tx, &[entry]).await.map_err(Error::from)?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Response::new(pb::IssueTargetResponse { target: Some((&stored).into()) }))
}

/// `DecomposeTarget`: the split checked in full before anything changes, kept as the
/// target's next version, audited.
pub async fn decompose_target(
    api: &AnalyticsApi,
    request: Request<pb::DecomposeTargetRequest>,
) -> Result<Response<pb::DecomposeTargetResponse>, Status> {
    let context = CallContext::authenticated(&request)?;
    let visibility = Visibility::of(crm_platform::auth::caller(&request)?);
    let r = request.get_ref();
    let (id, shares) = match (convert::target_id("target_id", &r.target_id), convert::target_shares(&r.shares)) {
        (Ok(id), Ok(shares)) => (id, shares),
        (id, shares) => {
            let mut v = id.err().unwrap_or_default();
            v.extend(shares.err().unwrap_or_default());
            return Err(Error::Invalid(v).into());
        }
    };
    let mut tx = api.pool.begin().await.map_err(Error::from)?;
    let parent = store::targets::get(&mut tx, id, true).await?;
    let rm = match &parent.target.assignee {
        Assignee::Rm(rm) => Some(rm),
        Assignee::Org(_) => None,
    };
    if !store::targets::visible(&mut *tx, &parent.booked_at, rm, &visibility).await? {
        return Err(Error::OutOfScope(format!("target {id}")).into());
    }
    let (version, children) = store::targets::decompose(&mut tx, &parent, &shares, context.actor()).await?;
    let split: Vec<serde_json::Value> = children.iter().map(details).collect();
    let entry = context.audit(
        "target.decomposed",
        Some(&format!("target/{id}")),
        serde_json::json!({ "version": version, "parent": details(&parent), "shares": split }),
    );
    crm_platform::audit::record_in(&mut tx, &[entry]).await.map_err(Error::from)?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Response::new(pb::DecomposeTargetResponse {
        version,
        children: children.iter().map(pb::Target::from).collect(),
    }))
}

/// `ListTargets`: the targets of the days asked, inside the caller's scope.
pub async fn list_targets(
    api: &AnalyticsApi,
    request: Request<pb::ListTargetsRequest>,
) -> Result<Response<pb::ListTargetsResponse>, Status> {
    let visibility = Visibility::of(crm_platform::auth::caller(&request)?);
    let days = convert::target_days(request.get_ref()).map_err(Error::Invalid)?;
    let targets = store::targets::list(&api.pool, &days, &visibility).await?;
    Ok(Response::new(pb::ListTargetsResponse { targets: targets.iter().map(pb::Target::from).collect() }))
}

/// `GetTargetProgress`: a target and what was decomposed below it, with actuals,
/// inside the caller's scope.
pub async fn get_target_progress(
    api: &AnalyticsApi,
    request: Request<pb::GetTargetProgressRequest>,
) -> Result<Response<pb::GetTargetProgressResponse>, Status> {
    let visibility = Visibility::of(crm_platform::auth::caller(&request)?);
    let id = convert::target_id("target_id", &request.get_ref().target_id).map_err(Error::Invalid)?;
    let progress = store::targets::progress(&api.pool, id, &visibility).await?;
    Ok(Response::new(pb::GetTargetProgressResponse {
        progress: progress.iter().map(|(t, p)| convert::target_progress(t, p)).collect(),
    }))
}
