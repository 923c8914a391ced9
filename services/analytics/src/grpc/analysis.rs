//! Analysis within the caller's data scope: AUM by org, the level migration matrix,
//! churn signals, RM performance, ad-hoc aggregations. Every answer covers only the
//! customers the caller's data scope shows ([`Visibility`]); nothing is written.

use crm_platform::auth::{Caller, Visibility};
use crm_proto::crm::analytics::v1 as pb;
use tonic::{Request, Response, Status};

use super::AnalyticsApi;
use crate::convert::{self, ChurnRequest};
use crate::domain::analysis::{ChurnSignal, decline_window, quiet_window};
use crate::error::{Error, Result};
use crate::store;
use crate::store::analysis::{AumAt, MAX_GROUPS, OrgRoot};

/// The caller and what it may see.
fn visibility<T>(request: &Request<T>) -> Result<(&Caller, Visibility), Status> {
    let caller = crm_platform::auth::caller(request)?;
    Ok((caller, Visibility::of(caller)))
}

/// The org a breakdown is under: the one asked for, else the whole tree for a caller
/// who sees every customer, else the caller's own org.
async fn org_root(api: &AnalyticsApi, org: Option<&str>, caller: &Caller, visibility: &Visibility) -> Result<OrgRoot> {
    match org {
        Some(org) => store::analysis::org(&api.pool, org).await,
        None if *visibility == Visibility::All => Ok(OrgRoot::whole_tree()),
        None => Ok(OrgRoot { org_id: caller.claims.org.clone(), path: caller.claims.org_path.clone() }),
    }
}

/// `GetAumByOrg`.
pub async fn get_aum_by_org(
    api: &AnalyticsApi,
    request: Request<pb::GetAumByOrgRequest>,
) -> Result<Response<pb::GetAumByOrgResponse>, Status> {
    let (org, at) = convert::aum_by_org_request(request.get_ref()).map_err(Error::Invalid)?;
    let (caller, visibility) = visibility(&request)?;
    let root = org_root(api, org.as_deref(), caller, &visibility).await?;
    if let AumAt::Month(month) = at {
        store::analysis::require_closed(&api.pool, &[month]).await?;
    }
    let groups = store::analysis::aum_by_org(&api.pool, &root, at, &visibility).await?;
    Ok(Response::new(pb::GetAumByOrgResponse {
        org_id: root.org_id,
        rows: groups.iter().map(pb::AumByOrgRow::from).collect(),
    }))
}

/// `GetLevelMigration`.
pub async fn get_level_migration(
    api: &AnalyticsApi,
    request: Request<pb::GetLevelMigrationRequest>,
) -> Result<Response<pb::GetLevelMigrationResponse>, Status> {
    let (from, to) = convert::level_migration_request(request.get_ref()).map_err(Error::Invalid)?;
    let (_, visibility) = visibility(&request)?;
    let cells = store::analysis::level_migration(&api.pool, from, to, &visibility).await?;
    Ok(Response::new(pb::GetLevelMigrationResponse {
        from_month: from.to_string(),
        to_month: to.to_string(),
        cells: cells.iter().map(pb::LevelMigrationCell::from).collect(),
    }))
}

/// `ListChurnSignals`: a page at a position of the list (the token holds the position).
pub async fn list_churn_signals(
    api: &AnalyticsApi,
    request: Request<pb::ListChurnSignalsRequest>,
) -> Result<Response<pb::ListChurnSignalsResponse>, Status> {
    let ChurnRequest { signal, months, month, page } =
        convert::churn_request(request.get_ref()).map_err(Error::Invalid)?;
    let (_, visibility) = visibility(&request)?;
    let reference = match month {
        Some(month) => month,
        None => store::analysis::latest_closed(&api.pool)
            .await?
            .ok_or_else(|| Error::Precondition("no month is closed: give the month".into()))?,
    };
    let outside = || Error::Precondition(format!("{months} months before {reference} is before the calendar"));
    let limits = (page.size, page.position());
    let (from, rows) = match signal {
        ChurnSignal::AumDecline { percent } => {
            let (start, end) = decline_window(reference, months).ok_or_else(outside)?;
            store::analysis::require_closed(&api.pool, &[start, end]).await?;
            (start, store::analysis::aum_declines(&api.pool, (start, end), percent, &visibility, limits).await?)
        }
        ChurnSignal::NoTransactions => {
            let window = quiet_window(reference, months).ok_or_else(outside)?;
            let first = crate::domain::calendar::Month::of(window.0);
            (first, store::analysis::quiet_customers(&api.pool, window, &visibility, limits).await?)
        }
    };
    let next_page_token = if rows.len() as i64 == page.size {
        crm_platform::paging::token(convert::CHURN_LIST, page.position().saturating_add(page.size))
    } else {
        String::new()
    };
    Ok(Response::new(pb::ListChurnSignalsResponse {
        from_month: from.to_string(),
        to_month: reference.to_string(),
        customers: rows.iter().map(pb::ChurnSignalEntry::from).collect(),
        next_page_token,
    }))
}

/// `GetRmPerformance`.
pub async fn get_rm_performance(
    api: &AnalyticsApi,
    request: Request<pb::GetRmPerformanceRequest>,
) -> Result<Response<pb::GetRmPerformanceResponse>, Status> {
    let (from, to) = convert::rm_performance_request(request.get_ref()).map_err(Error::Invalid)?;
    let (_, visibility) = visibility(&request)?;
    store::analysis::require_closed(&api.pool, &[from, to]).await?;
    let rms = store::analysis::rm_performance(&api.pool, from, to, &visibility).await?;
    Ok(Response::new(pb::GetRmPerformanceResponse { rms: rms.iter().map(pb::RmPerformance::from).collect() }))
}

/// `AggregateCustomers`.
pub async fn aggregate_customers(
    api: &AnalyticsApi,
    request: Request<pb::AggregateCustomersRequest>,
) -> Result<Response<pb::AggregateCustomersResponse>, Status> {
    let aggregation = convert::aggregation(request.get_ref()).map_err(Error::Invalid)?;
    let (_, visibility) = visibility(&request)?;
    let groups = store::analysis::aggregate(&api.pool, &aggregation, &visibility).await?;
    if groups.len() > MAX_GROUPS {
        let mut v = crm_platform::FieldViolations::new();
        v.add("bucket_width", format!("more than {MAX_GROUPS} groups: give a (wider) bucket width"));
        return Err(Error::Invalid(v).into());
    }
    Ok(Response::new(pb::AggregateCustomersResponse { groups: groups.iter().map(pb::CustomerGroup::from).collect() }))
}
