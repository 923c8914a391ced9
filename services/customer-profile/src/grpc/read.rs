//! Reading golden records: one customer by number or source key, a search over
//! customers in the caller's data scope, and a customer's change history.

use crm_platform::FieldViolations;
use crm_platform::paging::Page;
use crm_proto::crm::customer::v1 as pb;
use tonic::{Request, Response, Status};

use super::{CustomerApi, viewer};
use crate::convert::{self, non_empty};
use crate::domain::{self, IdType};
use crate::error::Error;
use crate::pii::PiiCipher;
use crate::store;

pub(super) async fn get_customer(
    api: &CustomerApi,
    request: Request<pb::GetCustomerRequest>,
) -> Result<Response<pb::GetCustomerResponse>, Status> {
    let viewer = viewer(&request)?;
    let customer = match request.into_inner().lookup {
        Some(pb::get_customer_request::Lookup::CustomerNumber(n)) if !n.trim().is_empty() => {
            store::customer_by_number(&api.pool, n.trim()).await?
        }
        Some(pb::get_customer_request::Lookup::SourceKey(k))
            if !k.source_system.trim().is_empty() && !k.source_customer_id.trim().is_empty() =>
        {
            store::customer_by_source(&api.pool, k.source_system.trim(), k.source_customer_id.trim()).await?
        }
        _ => {
            let mut v = FieldViolations::new();
            v.add("lookup", "give a customer_number or a complete source_key");
            return Err(Error::Invalid(v).into());
        }
    };
    api.ensure_visible(&viewer, &customer.customer_number).await?;
    Ok(Response::new(pb::GetCustomerResponse { customer: Some(convert::customer(customer, api.reveal(&viewer))) }))
}

pub(super) async fn search_customers(
    api: &CustomerApi,
    request: Request<pb::SearchCustomersRequest>,
) -> Result<Response<pb::SearchCustomersResponse>, Status> {
    let viewer = viewer(&request)?;
    let r = request.into_inner();
    let mut v = FieldViolations::new();
    let page = Page::parse("search", r.page_size, &r.page_token, &mut v);
    let criteria = search_criteria(&api.pii, &r, viewer.visibility.clone(), &mut v);
    v.into_result().map_err(Error::Invalid)?;
    let rows = store::search(&api.pool, &criteria, page.position(), page.size).await?;
    let next = page.next_token(&rows, |c| c.party_id);
    let reveal = api.reveal(&viewer);
    let customers = rows.into_iter().map(|c| convert::customer_summary(c, reveal)).collect();
    Ok(Response::new(pb::SearchCustomersResponse { customers, next_page_token: next }))
}

/// The criteria of a search request, matched through blind indexes for ID and phone
/// numbers; at least one is required.
fn search_criteria(
    pii: &PiiCipher,
    r: &pb::SearchCustomersRequest,
    visibility: store::Visibility,
    v: &mut FieldViolations,
) -> store::SearchCriteria {
    let text = |s: &str| non_empty(s).map(|s| s.to_lowercase());
    let mut criteria = store::SearchCriteria {
        name_prefix: text(&r.name_prefix),
        name_contains: text(&r.name_contains),
        home_org_id: non_empty(&r.home_org_id),
        rm_id: non_empty(&r.rm_id),
        visibility,
        ..Default::default()
    };
    if let Some(id) = non_empty(&r.id_number) {
        // The same number under any type: as its resident-ID matching form (15 → 18)
        // and as it is.
        let forms: std::collections::BTreeSet<String> =
            [store::search_form(IdType::ResidentId, &id), store::search_form(IdType::Passport, &id)].into();
        criteria.id_indexes = Some(forms.iter().map(|f| pii.blind_index(store::ID_INDEX, f)).collect());
    }
    if let Some(phone) = non_empty(&r.mobile_phone) {
        match domain::record::normalize_mobile_phone(&phone) {
            Some(p) => criteria.phone_index = Some(pii.blind_index(store::PHONE_INDEX, &p)),
            None => {
                v.add("mobile_phone", "is not a mobile phone number");
            }
        }
    }
    let any = criteria.id_indexes.is_some()
        || criteria.phone_index.is_some()
        || criteria.name_prefix.is_some()
        || criteria.name_contains.is_some()
        || criteria.home_org_id.is_some()
        || criteria.rm_id.is_some();
    if !any && v.is_empty() {
        v.add(
            "criteria",
            "give at least one of id_number, mobile_phone, name_prefix, name_contains, home_org_id, rm_id",
        );
    }
    criteria
}

pub(super) async fn list_customer_history(
    api: &CustomerApi,
    request: Request<pb::ListCustomerHistoryRequest>,
) -> Result<Response<pb::ListCustomerHistoryResponse>, Status> {
    let viewer = viewer(&request)?;
    let r = request.into_inner();
    let mut v = FieldViolations::new();
    let page = Page::parse("customer-history", r.page_size, &r.page_token, &mut v);
    if r.customer_number.trim().is_empty() {
        v.add("customer_number", "is required");
    }
    v.into_result().map_err(Error::Invalid)?;
    api.visible_survivor(&viewer, r.customer_number.trim()).await?;
    let rows = store::customer_history(&api.pool, r.customer_number.trim(), page.position(), page.size).await?;
    let next = page.next_token(&rows, |h| h.id);
    Ok(Response::new(pb::ListCustomerHistoryResponse {
        changes: rows.into_iter().map(pb::CustomerChange::from).collect(),
        next_page_token: next,
    }))
}
