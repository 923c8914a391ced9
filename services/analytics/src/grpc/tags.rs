//! Tags: definitions, manual settings, a customer's tags and why it has one. Whatever
//! names one customer needs the customer in the caller's data scope.

use crm_platform::context::CallContext;
use crm_platform::convert::timestamp;
use crm_proto::crm::analytics::v1 as pb;
use tonic::{Request, Response, Status};

use super::AnalyticsApi;
use super::value::{customer_number, visible_customer};
use crate::domain::tags::{Code, TagDefinition};
use crate::error::{Error, Result};
use crate::{convert, store};

/// The audit details of a definition.
fn details(tag: &TagDefinition) -> serde_json::Value {
    let pb::Tag { code, name, kind, rule, version } = pb::Tag::from(tag);
    serde_json::json!({ "code": code, "name": name, "kind": kind, "rule": rule, "version": version })
}

/// `DefineTag`: stored as the next version, evaluated for every customer, audited; all
/// in one transaction.
pub async fn define_tag(
    api: &AnalyticsApi,
    request: Request<pb::DefineTagRequest>,
) -> Result<Response<pb::DefineTagResponse>, Status> {
    let context = CallContext::authenticated(&request)?;
    let tag = convert::tag_definition(request.get_ref().tag.as_ref()).map_err(Error::Invalid)?;
    let mut tx = api.pool.begin().await.map_err(Error::from)?;
    let stored = store::tags::define(&mut tx, &tag, context.actor()).await?;
    let entry = context.audit("tag.defined", Some(&format!("tag/{}", stored.code)), details(&stored));
    crm_platform::audit::record_in(&mut tx, &[entry]).await.map_err(Error::from)?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Response::new(pb::DefineTagResponse { tag: Some((&stored).into()) }))
}

/// `ListTags`.
pub async fn list_tags(
    api: &AnalyticsApi,
    _request: Request<pb::ListTagsRequest>,
) -> Result<Response<pb::ListTagsResponse>, Status> {
    let tags = store::tags::definitions(&api.pool).await?;
    Ok(Response::new(pb::ListTagsResponse { tags: tags.iter().map(pb::Tag::from).collect() }))
}

/// The customer number and tag code of a request, every problem named.
fn customer_and_tag(number: &str, code: &str) -> Result<(String, Code)> {
    match (customer_number(number), convert::code("tag_code", code)) {
        (Ok(number), Ok(code)) => Ok((number, code)),
        (number, code) => {
            let mut v = crm_platform::FieldViolations::new();
            if number.is_err() {
                v.add("customer_number", "is required: 1–32 digits");
            }
            if let Err(problems) = code {
                for (field, description) in problems.iter() {
                    v.add(field, description);
                }
            }
            Err(Error::Invalid(v))
        }
    }
}

/// `SetManualTag` (`set`) and `RemoveManualTag`, audited.
async fn manual(api: &AnalyticsApi, context: &CallContext, number: &str, code: &str, set: bool) -> Result<bool> {
    let (number, code) = customer_and_tag(number, code)?;
    let mut tx = api.pool.begin().await?;
    let (survivor, changed) = if set {
        store::tags::set_manual(&mut tx, &number, &code, context.actor()).await?
    } else {
        store::tags::remove_manual(&mut tx, &number, &code).await?
    };
    if changed {
        let action = if set { "tag.set" } else { "tag.removed" };
        let entry =
            context.audit(action, Some(&format!("customer/{survivor}")), serde_json::json!({ "tag": code.as_str() }));
        crm_platform::audit::record_in(&mut tx, &[entry]).await?;
    }
    tx.commit().await?;
    Ok(changed)
}

/// `SetManualTag`.
pub async fn set_manual_tag(
    api: &AnalyticsApi,
    request: Request<pb::SetManualTagRequest>,
) -> Result<Response<pb::SetManualTagResponse>, Status> {
    let context = CallContext::authenticated(&request)?;
    let r = request.get_ref();
    let (number, _) = customer_and_tag(&r.customer_number, &r.tag_code)?;
    visible_customer(api, &request, &number).await?;
    let changed = manual(api, &context, &r.customer_number, &r.tag_code, true).await?;
    Ok(Response::new(pb::SetManualTagResponse { changed }))
}

/// `RemoveManualTag`.
pub async fn remove_manual_tag(
    api: &AnalyticsApi,
    request: Request<pb::RemoveManualTagRequest>,
) -> Result<Response<pb::RemoveManualTagResponse>, Status> {
    let context = CallContext::authenticated(&request)?;
    let r = request.get_ref();
    let (number, _) = customer_and_tag(&r.customer_number, &r.tag_code)?;
    visible_customer(api, &request, &number).await?;
    let changed = manual(api, &context, &r.customer_number, &r.tag_code, false).await?;
    Ok(Response::new(pb::RemoveManualTagResponse { changed }))
}

/// `GetCustomerTags`.
pub async fn get_customer_tags(
    api: &AnalyticsApi,
    request: Request<pb::GetCustomerTagsRequest>,
) -> Result<Response<pb::GetCustomerTagsResponse>, Status> {
    let number = customer_number(&request.get_ref().customer_number)?;
    let number = visible_customer(api, &request, &number).await?;
    let (survivor, tags) = store::tags::customer_tags(&api.pool, &number).await?;
    Ok(Response::new(pb::GetCustomerTagsResponse {
        customer_number: survivor,
        tags: tags
            .into_iter()
            .map(|t| pb::CustomerTag {
                tag_code: t.code,
                name: t.name,
                source: pb::TagKind::from(t.source) as i32,
                since: Some(timestamp(t.since)),
            })
            .collect(),
    }))
}

/// `ExplainTag`.
pub async fn explain_tag(
    api: &AnalyticsApi,
    request: Request<pb::ExplainTagRequest>,
) -> Result<Response<pb::ExplainTagResponse>, Status> {
    let r = request.get_ref();
    let (number, code) = customer_and_tag(&r.customer_number, &r.tag_code)?;
    let number = visible_customer(api, &request, &number).await?;
    let (tag, holds, explanation) = store::tags::explain(&api.pool, &number, &code).await?;
    Ok(Response::new(pb::ExplainTagResponse { holds, explanation, tag: Some((&tag).into()) }))
}
