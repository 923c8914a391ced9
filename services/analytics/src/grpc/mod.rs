//! `crm.analytics.v1.AnalyticsService`: one file per RPC family (in proto order), each
//! handler parsing, authorizing, calling the store and mapping the answer.

mod catalogue;
mod facts;
mod rules;
mod value;

use std::pin::Pin;

use crm_proto::crm::analytics::v1 as pb;
use futures::Stream;
use sqlx::PgPool;
use tonic::{Request, Response, Status, Streaming};

use crate::settings::AnalyticsSettings;

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct AnalyticsApi {
    pool: PgPool,
    settings: AnalyticsSettings,
}

impl AnalyticsApi {
    /// A service over the database in `pool`.
    pub fn new(pool: PgPool, settings: AnalyticsSettings) -> Self {
        Self { pool, settings }
    }
}

/// A stream of recompute progress, each step wrapped in the RPC's response `T`.
pub type ProgressStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Every RPC, in proto order, handed to its family.
#[tonic::async_trait]
impl pb::analytics_service_server::AnalyticsService for AnalyticsApi {
    async fn upsert_products(
        &self,
        request: Request<pb::UpsertProductsRequest>,
    ) -> Result<Response<pb::UpsertProductsResponse>, Status> {
        catalogue::upsert_products(self, request).await
    }

    async fn list_products(
        &self,
        request: Request<pb::ListProductsRequest>,
    ) -> Result<Response<pb::ListProductsResponse>, Status> {
        catalogue::list_products(self, request).await
    }

    async fn set_fx_rates(
        &self,
        request: Request<pb::SetFxRatesRequest>,
    ) -> Result<Response<pb::SetFxRatesResponse>, Status> {
        catalogue::set_fx_rates(self, request).await
    }

    async fn load_balances(
        &self,
        request: Request<Streaming<pb::LoadBalancesRequest>>,
    ) -> Result<Response<pb::LoadBalancesResponse>, Status> {
        facts::load_balances(self, request).await
    }

    async fn record_transactions(
        &self,
        request: Request<Streaming<pb::RecordTransactionsRequest>>,
    ) -> Result<Response<pb::RecordTransactionsResponse>, Status> {
        facts::record_transactions(self, request).await
    }

    async fn get_customer_value(
        &self,
        request: Request<pb::GetCustomerValueRequest>,
    ) -> Result<Response<pb::GetCustomerValueResponse>, Status> {
        value::get_customer_value(self, request).await
    }

    async fn list_level_history(
        &self,
        request: Request<pb::ListLevelHistoryRequest>,
    ) -> Result<Response<pb::ListLevelHistoryResponse>, Status> {
        value::list_level_history(self, request).await
    }

    async fn get_level_on(
        &self,
        request: Request<pb::GetLevelOnRequest>,
    ) -> Result<Response<pb::GetLevelOnResponse>, Status> {
        value::get_level_on(self, request).await
    }

    async fn put_level_rule(
        &self,
        request: Request<pb::PutLevelRuleRequest>,
    ) -> Result<Response<pb::PutLevelRuleResponse>, Status> {
        rules::put_level_rule(self, request).await
    }

    async fn list_level_rules(
        &self,
        request: Request<pb::ListLevelRulesRequest>,
    ) -> Result<Response<pb::ListLevelRulesResponse>, Status> {
        rules::list_level_rules(self, request).await
    }

    type CloseMonthStream = ProgressStream<pb::CloseMonthResponse>;

    async fn close_month(
        &self,
        request: Request<pb::CloseMonthRequest>,
    ) -> Result<Response<Self::CloseMonthStream>, Status> {
        rules::close_month(self, request).await
    }

    type RecomputeAllStream = ProgressStream<pb::RecomputeAllResponse>;

    async fn recompute_all(
        &self,
        request: Request<pb::RecomputeAllRequest>,
    ) -> Result<Response<Self::RecomputeAllStream>, Status> {
        rules::recompute_all(self, request).await
    }
}
