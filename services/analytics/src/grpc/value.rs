//! Reading customer value: the value card, the level history, the level on a date.

use crm_platform::FieldViolations;
use crm_platform::auth::Visibility;
use crm_platform::convert::{date, date_of};
use crm_proto::crm::analytics::v1 as pb;
use time::Date;
use tonic::{Request, Response, Status};

use super::AnalyticsApi;
use crate::domain::levels::{LevelChange, RuleSet, level_on};
use crate::error::{Error, Result};
use crate::store;

/// The customer number of a request, or the violation.
pub(super) fn customer_number(number: &str) -> Result<String> {
    let number = number.trim();
    if number.is_empty() || number.len() > 32 || !number.chars().all(|c| c.is_ascii_digit()) {
        let mut v = FieldViolations::new();
        v.add("customer_number", "is required: 1–32 digits");
        return Err(Error::Invalid(v));
    }
    Ok(number.to_string())
}

/// The survivor of `number` when the caller may see it: NOT_FOUND when analytics does
/// not know it, PERMISSION_DENIED when it lies outside the caller's data scope.
pub(super) async fn visible_customer<T>(
    api: &AnalyticsApi,
    request: &Request<T>,
    number: &str,
) -> Result<String, Status> {
    let visibility = Visibility::of(crm_platform::auth::caller(request)?);
    let survivor = store::values::survivor(&api.pool, number).await?;
    if !store::scope::visible(&api.pool, &survivor, &visibility).await? {
        return Err(Error::OutOfScope(format!("customer {number}")).into());
    }
    Ok(survivor)
}

/// The display name of level `code` under the rule in force on `on`.
fn level_name(rules: &RuleSet, code: &str, on: Date) -> String {
    rules
        .rule_on(on)
        .and_then(|r| r.levels.iter().find(|l| l.code == code))
        .or_else(|| rules.versions().iter().rev().flat_map(|r| r.levels.iter()).find(|l| l.code == code))
        .map_or_else(|| code.to_string(), |l| l.name.clone())
}

async fn rules(api: &AnalyticsApi) -> Result<RuleSet> {
    store::rules::with_default(store::rules::stored(&api.pool).await?)
}

/// `GetCustomerValue`.
pub async fn get_customer_value(
    api: &AnalyticsApi,
    request: Request<pb::GetCustomerValueRequest>,
) -> Result<Response<pb::GetCustomerValueResponse>, Status> {
    let number = customer_number(&request.get_ref().customer_number)?;
    let number = visible_customer(api, &request, &number).await?;
    let value = store::values::value(&api.pool, &number).await?;
    let rules = rules(api).await?;
    let on = value.as_of.unwrap_or(time::OffsetDateTime::now_utc().date());
    let rfm = store::rfm::of_customer(&api.pool, &number).await?.into_iter().find(|r| r.family.is_empty());
    let cards: Vec<_> = store::scorecards::latest(&api.pool).await?.into_iter().map(|c| c.card).collect();
    let scores = store::scorecards::score(&api.pool, &number, &cards).await?;
    let (_, tags) = store::tags::customer_tags(&api.pool, &number).await?;
    let mut tags: Vec<String> = tags.into_iter().map(|t| t.code).collect();
    tags.dedup();
    Ok(Response::new(pb::GetCustomerValueResponse {
        rfm: rfm.as_ref().map(pb::RfmScores::from),
        scores: scores.iter().map(pb::CustomerScore::from).collect(),
        tags,
        level_name: level_name(&rules, &value.level_code, on),
        aum: value
            .by_class()
            .into_iter()
            .map(|(class, now, month)| pb::ClassAum {
                asset_class: pb::AssetClass::from(class) as i32,
                point_in_time_minor: now,
                month_daily_average_minor: month,
            })
            .collect(),
        level_since: value.level_since.map(date),
        on_watch: value.watch_months > 0,
        watch_months: value.watch_months,
        weighted_aum_minor: value.weighted_aum,
        month_weighted_aum_minor: value.month_weighted_aum,
        latest_closed_month: value.latest_closed_month.clone().unwrap_or_default(),
        as_of: value.as_of.map(date),
        level_code: value.level_code,
        customer_number: value.customer_number,
    }))
}

/// `ListLevelHistory`: newest first.
pub async fn list_level_history(
    api: &AnalyticsApi,
    request: Request<pb::ListLevelHistoryRequest>,
) -> Result<Response<pb::ListLevelHistoryResponse>, Status> {
    let number = customer_number(&request.get_ref().customer_number)?;
    let number = visible_customer(api, &request, &number).await?;
    let (_, changes) = store::values::history(&api.pool, &number).await?;
    Ok(Response::new(pb::ListLevelHistoryResponse {
        changes: changes.iter().rev().map(pb::LevelChange::from).collect(),
    }))
}

/// `GetLevelOn`: the level at the end of the date (the lowest level before the first
/// balance).
pub async fn get_level_on(
    api: &AnalyticsApi,
    request: Request<pb::GetLevelOnRequest>,
) -> Result<Response<pb::GetLevelOnResponse>, Status> {
    let r = request.get_ref();
    let number = customer_number(&r.customer_number);
    let on = r.date.as_ref().and_then(date_of);
    let (number, on) = match (number, on) {
        (Ok(number), Some(on)) => (number, on),
        (number, on) => {
            let mut v = FieldViolations::new();
            if number.is_err() {
                v.add("customer_number", "is required: 1–32 digits");
            }
            if on.is_none() {
                v.add("date", "is required and must be a real calendar date");
            }
            return Err(Error::Invalid(v).into());
        }
    };
    let number = visible_customer(api, &request, &number).await?;
    let (_, rows) = store::values::history(&api.pool, &number).await?;
    let rules = rules(api).await?;
    let changes: Vec<LevelChange> = rows
        .iter()
        .map(|r| LevelChange {
            from: r.from_level.clone(),
            to: r.to_level.clone(),
            kind: r.kind,
            effective: r.effective_date,
            rule_version: r.rule_version as u32,
        })
        .collect();
    let lowest = rules.rule_on(on).and_then(|r| r.levels.first()).map(|l| l.code.clone()).unwrap_or_default();
    let initial = changes.first().map_or(lowest.clone(), |c| c.from.clone());
    let code = level_on(&changes, &initial, on).to_string();
    Ok(Response::new(pb::GetLevelOnResponse { level_name: level_name(&rules, &code, on), level_code: code }))
}
