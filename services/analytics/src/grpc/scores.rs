//! RFM and scorecards: a customer's RFM, the RFM window, scorecard versions and a
//! customer's explained score.

use crm_platform::FieldViolations;
use crm_platform::context::CallContext;
use crm_platform::convert::date;
use crm_proto::crm::analytics::v1 as pb;
use tonic::{Request, Response, Status};

use super::AnalyticsApi;
use super::value::{customer_number, visible_customer};
use crate::domain::rfm::RfmWindow;
use crate::error::{Error, Result};
use crate::{convert, store};

/// `GetCustomerRfm`.
pub async fn get_customer_rfm(
    api: &AnalyticsApi,
    request: Request<pb::GetCustomerRfmRequest>,
) -> Result<Response<pb::GetCustomerRfmResponse>, Status> {
    let number = customer_number(&request.get_ref().customer_number)?;
    let number = visible_customer(api, &request, &number).await?;
    let window = store::rfm::window(&api.pool).await?;
    let scored_on = store::rfm::scoring_date(&api.pool).await?;
    let (overall, by_family): (Vec<_>, Vec<_>) =
        store::rfm::of_customer(&api.pool, &number).await?.into_iter().partition(|r| r.family.is_empty());
    Ok(Response::new(pb::GetCustomerRfmResponse {
        customer_number: number,
        scored_on: scored_on.map(date),
        window_days: i32::try_from(window.days).unwrap_or(i32::MAX),
        overall: overall.first().map(pb::RfmScores::from),
        by_family: by_family.iter().map(pb::RfmScores::from).collect(),
    }))
}

/// `SetRfmWindow`: the window, the population rescored and the audit entry in one
/// transaction.
pub async fn set_rfm_window(
    api: &AnalyticsApi,
    request: Request<pb::SetRfmWindowRequest>,
) -> Result<Response<pb::SetRfmWindowResponse>, Status> {
    let context = CallContext::authenticated(&request)?;
    let days = request.get_ref().window_days;
    let Some(days) = u32::try_from(days).ok().filter(|d| (1..=3660).contains(d)) else {
        let mut v = FieldViolations::new();
        v.add("window_days", "must be 1–3660 days");
        return Err(Error::Invalid(v).into());
    };
    let mut tx = api.pool.begin().await.map_err(Error::from)?;
    store::rfm::set_window(&mut tx, RfmWindow { days }, context.actor()).await?;
    let rescored = store::valuation::rescore_rfm(&mut tx).await?;
    let entry = context.audit("rfm.window_set", Some("rfm"), serde_json::json!({ "window_days": days }));
    crm_platform::audit::record_in(&mut tx, &[entry]).await.map_err(Error::from)?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Response::new(pb::SetRfmWindowResponse {
        window_days: i32::try_from(days).unwrap_or(i32::MAX),
        customers_rescored: i32::try_from(rescored).unwrap_or(i32::MAX),
    }))
}

/// `DefineScorecard`: stored as the next version of its code, audited.
pub async fn define_scorecard(
    api: &AnalyticsApi,
    request: Request<pb::DefineScorecardRequest>,
) -> Result<Response<pb::DefineScorecardResponse>, Status> {
    let context = CallContext::authenticated(&request)?;
    let (name, card) = convert::scorecard(request.get_ref().scorecard.as_ref()).map_err(Error::Invalid)?;
    let mut tx = api.pool.begin().await.map_err(Error::from)?;
    let stored = store::scorecards::define(&mut tx, &name, &card, context.actor()).await?;
    let wire = pb::Scorecard::from(&stored);
    let details = serde_json::json!({ "code": wire.code, "version": wire.version, "name": wire.name, "definition": &stored.card });
    let entry = context.audit("scorecard.defined", Some(&format!("scorecard/{}", wire.code)), details);
    crm_platform::audit::record_in(&mut tx, &[entry]).await.map_err(Error::from)?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Response::new(pb::DefineScorecardResponse { scorecard: Some(wire) }))
}

/// `ListScorecards`.
pub async fn list_scorecards(
    api: &AnalyticsApi,
    _request: Request<pb::ListScorecardsRequest>,
) -> Result<Response<pb::ListScorecardsResponse>, Status> {
    let cards = store::scorecards::latest(&api.pool).await?;
    Ok(Response::new(pb::ListScorecardsResponse { scorecards: cards.iter().map(pb::Scorecard::from).collect() }))
}

/// `GetCustomerScore`.
pub async fn get_customer_score(
    api: &AnalyticsApi,
    request: Request<pb::GetCustomerScoreRequest>,
) -> Result<Response<pb::GetCustomerScoreResponse>, Status> {
    let pb::GetCustomerScoreRequest { customer_number: number, scorecard_code, version } = request.get_ref();
    let mut v = FieldViolations::new();
    let number = customer_number(number).ok();
    if number.is_none() {
        v.add("customer_number", "is required: 1–32 digits");
    }
    let code = scorecard_code.trim();
    if code.is_empty() {
        v.add("scorecard_code", "is required");
    }
    let version = u32::try_from(*version).ok();
    if version.is_none() {
        v.add("version", "must be 0 (the latest) or more");
    }
    let (Some(number), Some(version), true) = (number, version, v.is_empty()) else {
        return Err(Error::Invalid(v).into());
    };
    let number = visible_customer(api, &request, &number).await?;
    let card = store::scorecards::get(&api.pool, code, (version > 0).then_some(version)).await?;
    let score = store::scorecards::score(&api.pool, &number, std::slice::from_ref(&card.card)).await?;
    Ok(Response::new(pb::GetCustomerScoreResponse {
        customer_number: number,
        score: score.first().map(pb::CustomerScore::from),
    }))
}
