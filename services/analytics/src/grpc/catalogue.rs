//! The product catalogue and FX rates.

use crm_platform::FieldViolations;
use crm_platform::context::CallContext;
use crm_platform::convert::{Currency, date_of};
use crm_proto::crm::analytics::v1 as pb;
use tonic::{Request, Response, Status};

use super::AnalyticsApi;
use crate::error::Error;
use crate::{convert, store};

/// `UpsertProducts`: each product stored or refused on its own.
pub async fn upsert_products(
    api: &AnalyticsApi,
    request: Request<pb::UpsertProductsRequest>,
) -> Result<Response<pb::UpsertProductsResponse>, Status> {
    let context = CallContext::authenticated(&request)?;
    let products = request.into_inner().products;
    if products.len() > api.settings.max_products_per_call {
        let mut v = FieldViolations::new();
        v.add("products", format!("at most {} per call", api.settings.max_products_per_call));
        return Err(Error::Invalid(v).into());
    }
    let parsed: Vec<_> =
        products.iter().enumerate().map(|(i, p)| convert::product(p, &format!("products[{i}]."))).collect();
    let outcomes = store::catalogue::upsert_products(&api.pool, &context, &parsed).await?;
    Ok(Response::new(pb::UpsertProductsResponse {
        outcomes: products
            .iter()
            .zip(parsed)
            .zip(outcomes)
            .map(|((p, parsed), changed)| pb::ProductOutcome {
                product_code: p.product_code.clone(),
                changed,
                violations: parsed.err().map(|v| v.to_wire()).unwrap_or_default(),
            })
            .collect(),
    }))
}

/// `ListProducts`.
pub async fn list_products(
    api: &AnalyticsApi,
    _request: Request<pb::ListProductsRequest>,
) -> Result<Response<pb::ListProductsResponse>, Status> {
    let products = store::catalogue::products(&api.pool).await?;
    Ok(Response::new(pb::ListProductsResponse { products: products.iter().map(pb::Product::from).collect() }))
}

/// `SetFxRates`: all stored, or none when one is bad.
pub async fn set_fx_rates(
    api: &AnalyticsApi,
    request: Request<pb::SetFxRatesRequest>,
) -> Result<Response<pb::SetFxRatesResponse>, Status> {
    let context = CallContext::authenticated(&request)?;
    let mut v = FieldViolations::new();
    let mut rates = Vec::new();
    for (i, r) in request.get_ref().rates.iter().enumerate() {
        let currency = Currency::parse(&r.currency_code).filter(|c| *c != Currency::CNY);
        if currency.is_none() {
            v.add(format!("rates[{i}].currency_code"), "must be an ISO 4217 code other than CNY");
        }
        let date = r.rate_date.as_ref().and_then(date_of);
        if date.is_none() {
            v.add(format!("rates[{i}].rate_date"), "is required and must be a real calendar date");
        }
        if r.cny_per_unit_micros <= 0 {
            v.add(format!("rates[{i}].cny_per_unit_micros"), "must be positive");
        }
        if let (Some(currency), Some(date)) = (currency, date) {
            rates.push((currency, date, r.cny_per_unit_micros));
        }
    }
    if !v.is_empty() {
        return Err(Error::Invalid(v).into());
    }
    let released = store::catalogue::set_fx_rates(&api.pool, &context, &rates).await?;
    Ok(Response::new(pb::SetFxRatesResponse { stored_count: rates.len() as i32, released_count: released }))
}
