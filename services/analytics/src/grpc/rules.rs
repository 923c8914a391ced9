//! Level rules, month closing and the full recompute (streams of progress).

use std::collections::BTreeSet;

use crm_platform::FieldViolations;
use crm_platform::context::CallContext;
use crm_proto::crm::analytics::v1 as pb;
use futures::StreamExt;
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use super::{AnalyticsApi, ProgressStream};
use crate::domain::calendar::Month;
use crate::error::Error;
use crate::{convert, store};

/// Customers recomputed per transaction by a full recompute.
const RECOMPUTE_CHUNK: usize = 200;

/// `PutLevelRule`: stored, audited, and every customer recomputed under it.
pub async fn put_level_rule(
    api: &AnalyticsApi,
    request: Request<pb::PutLevelRuleRequest>,
) -> Result<Response<pb::PutLevelRuleResponse>, Status> {
    let context = CallContext::authenticated(&request)?;
    let rule = convert::level_rule(request.get_ref().rule.as_ref()).map_err(Error::Invalid)?;
    let mut tx = api.pool.begin().await.map_err(Error::from)?;
    store::rules::put(&mut tx, &rule, context.actor()).await?;
    let entry = context.audit(
        "level_rule.put",
        Some(&format!("level_rule/{}", rule.version)),
        serde_json::to_value(&rule).unwrap_or_default(),
    );
    crm_platform::audit::record_in(&mut tx, &[entry]).await.map_err(Error::from)?;
    tx.commit().await.map_err(Error::from)?;
    recompute_all_now(&api.pool).await?;
    Ok(Response::new(pb::PutLevelRuleResponse { rule: Some((&rule).into()) }))
}

/// `ListLevelRules`: the versions in force over time, the built-in default (version 0)
/// first when it still applies.
pub async fn list_level_rules(
    api: &AnalyticsApi,
    _request: Request<pb::ListLevelRulesRequest>,
) -> Result<Response<pb::ListLevelRulesResponse>, Status> {
    let rules = store::rules::with_default(store::rules::stored(&api.pool).await?)?;
    Ok(Response::new(pb::ListLevelRulesResponse { rules: rules.versions().iter().map(pb::LevelRule::from).collect() }))
}

/// `CloseMonth`: the month closed (audited), then every customer recomputed.
pub async fn close_month(
    api: &AnalyticsApi,
    request: Request<pb::CloseMonthRequest>,
) -> Result<Response<ProgressStream<pb::CloseMonthResponse>>, Status> {
    let context = CallContext::authenticated(&request)?;
    let month: Month = request.get_ref().month.trim().parse().map_err(|_| {
        let mut v = FieldViolations::new();
        v.add("month", "must be a month such as 2026-10");
        Error::Invalid(v)
    })?;
    if month.last_day() >= time::OffsetDateTime::now_utc().date() {
        let mut v = FieldViolations::new();
        v.add("month", format!("{month} has not ended yet"));
        return Err(Error::Invalid(v).into());
    }
    let mut tx = api.pool.begin().await.map_err(Error::from)?;
    store::rules::close(&mut tx, month, context.actor()).await?;
    let entry = context.audit("month.closed", Some(&month.to_string()), serde_json::json!({}));
    crm_platform::audit::record_in(&mut tx, &[entry]).await.map_err(Error::from)?;
    tx.commit().await.map_err(Error::from)?;
    let steps = progress(api.pool.clone()).await?;
    Ok(Response::new(Box::pin(steps.map(|p| p.map(|p| pb::CloseMonthResponse { progress: Some(p) })))))
}

/// `RecomputeAll`: every fact's owner resolved again, then every customer replayed.
pub async fn recompute_all(
    api: &AnalyticsApi,
    request: Request<pb::RecomputeAllRequest>,
) -> Result<Response<ProgressStream<pb::RecomputeAllResponse>>, Status> {
    let context = CallContext::authenticated(&request)?;
    crm_platform::audit::record(&api.pool, &[context.audit("values.recomputed", None, serde_json::json!({}))])
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    store::rules::reresolve_owners(&api.pool).await?;
    let steps = progress(api.pool.clone()).await?;
    Ok(Response::new(Box::pin(steps.map(|p| p.map(|p| pb::RecomputeAllResponse { progress: Some(p) })))))
}

/// Recomputes every customer before answering (a rule change).
async fn recompute_all_now(pool: &PgPool) -> Result<(), Status> {
    let mut stream = progress(pool.clone()).await?;
    while let Some(step) = stream.next().await {
        step?;
    }
    Ok(())
}

/// Recomputes every customer in chunks of [`RECOMPUTE_CHUNK`], one transaction each,
/// yielding progress after each; the last also rescores the RFM population. An
/// interrupted recompute can simply run again.
pub(crate) async fn progress(pool: PgPool) -> Result<ProgressStream<pb::RecomputeProgress>, Status> {
    let customers = store::rules::all_customers(&pool).await?;
    let total = customers.len() as i64;
    let chunks: Vec<BTreeSet<String>> =
        customers.chunks(RECOMPUTE_CHUNK).map(|c| c.iter().cloned().collect()).collect();
    let steps = futures::stream::iter(chunks).scan((0i64, 0i64), move |(done, changes), chunk| {
        let pool = pool.clone();
        let size = chunk.len() as i64;
        let before = (*done, *changes);
        *done += size;
        let last = before.0 + size == total;
        async move {
            let result: Result<u64, Error> = async {
                let mut tx = pool.begin().await?;
                let n = store::valuation::recompute_values(&mut tx, &chunk).await?;
                if last {
                    store::valuation::rescore_rfm(&mut tx).await?;
                }
                store::segments::refresh_memberships(&mut tx, &chunk).await?;
                tx.commit().await?;
                Ok(n)
            }
            .await;
            Some((before, size, result))
        }
    });
    let mut level_changes = 0i64;
    let stream = steps.map(move |((done_before, _), size, result)| {
        let n = result.map_err(Status::from)?;
        level_changes += n as i64;
        Ok(pb::RecomputeProgress {
            customers_done: done_before + size,
            customers_total: total,
            level_changes,
            finished: done_before + size == total,
        })
    });
    let empty = futures::stream::iter((total == 0).then(|| {
        Ok(pb::RecomputeProgress { customers_done: 0, customers_total: 0, level_changes: 0, finished: true })
    }));
    Ok(Box::pin(stream.chain(empty)))
}
