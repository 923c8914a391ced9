//! `crm.analytics.v1.AnalyticsService`: one file per RPC family (in proto order), each
//! handler parsing, authorizing, calling the store and mapping the answer.

mod analysis;
mod catalogue;
mod facts;
mod rules;
mod scores;
mod segments;
mod tags;
mod targets;
mod value;

use std::pin::Pin;

use crm_proto::crm::analytics::v1 as pb;
use futures::Stream;
use sqlx::PgPool;
use tonic::{Request, Response, Status, Streaming};

use crate::settings::AnalyticsSettings;

/// A full recompute of every customer with its progress, as `RecomputeAll` streams it
/// (for `analytics recompute-all`): owners re-resolved first, then the customers in
/// chunks, the RFM population rescored with the last.
pub async fn recompute_all(pool: PgPool) -> Result<ProgressStream<pb::RecomputeProgress>, Status> {
    crate::store::rules::reresolve_owners(&pool).await?;
    rules::progress(pool).await
}

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

    /// The `[analytics]` settings it serves with.
    pub fn settings(&self) -> &AnalyticsSettings {
        &self.settings
    }
}

/// A stream of recompute progress, each step wrapped in the RPC's response `T`.
pub type ProgressStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// A stream of a snapshot's pages of members.
pub type SnapshotStream = Pin<Box<dyn Stream<Item = Result<pb::StreamSegmentSnapshotResponse, Status>> + Send>>;

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

    async fn define_tag(
        &self,
        request: Request<pb::DefineTagRequest>,
    ) -> Result<Response<pb::DefineTagResponse>, Status> {
        tags::define_tag(self, request).await
    }

    async fn list_tags(&self, request: Request<pb::ListTagsRequest>) -> Result<Response<pb::ListTagsResponse>, Status> {
        tags::list_tags(self, request).await
    }

    async fn set_manual_tag(
        &self,
        request: Request<pb::SetManualTagRequest>,
    ) -> Result<Response<pb::SetManualTagResponse>, Status> {
        tags::set_manual_tag(self, request).await
    }

    async fn remove_manual_tag(
        &self,
        request: Request<pb::RemoveManualTagRequest>,
    ) -> Result<Response<pb::RemoveManualTagResponse>, Status> {
        tags::remove_manual_tag(self, request).await
    }

    async fn get_customer_tags(
        &self,
        request: Request<pb::GetCustomerTagsRequest>,
    ) -> Result<Response<pb::GetCustomerTagsResponse>, Status> {
        tags::get_customer_tags(self, request).await
    }

    async fn explain_tag(
        &self,
        request: Request<pb::ExplainTagRequest>,
    ) -> Result<Response<pb::ExplainTagResponse>, Status> {
        tags::explain_tag(self, request).await
    }

    async fn define_segment(
        &self,
        request: Request<pb::DefineSegmentRequest>,
    ) -> Result<Response<pb::DefineSegmentResponse>, Status> {
        segments::define_segment(self, request).await
    }

    async fn evaluate_segment(
        &self,
        request: Request<pb::EvaluateSegmentRequest>,
    ) -> Result<Response<pb::EvaluateSegmentResponse>, Status> {
        segments::evaluate_segment(self, request).await
    }

    type StreamSegmentSnapshotStream = SnapshotStream;

    async fn stream_segment_snapshot(
        &self,
        request: Request<pb::StreamSegmentSnapshotRequest>,
    ) -> Result<Response<Self::StreamSegmentSnapshotStream>, Status> {
        segments::stream_segment_snapshot(self, request).await
    }

    async fn get_customer_rfm(
        &self,
        request: Request<pb::GetCustomerRfmRequest>,
    ) -> Result<Response<pb::GetCustomerRfmResponse>, Status> {
        scores::get_customer_rfm(self, request).await
    }

    async fn set_rfm_window(
        &self,
        request: Request<pb::SetRfmWindowRequest>,
    ) -> Result<Response<pb::SetRfmWindowResponse>, Status> {
        scores::set_rfm_window(self, request).await
    }

    async fn define_scorecard(
        &self,
        request: Request<pb::DefineScorecardRequest>,
    ) -> Result<Response<pb::DefineScorecardResponse>, Status> {
        scores::define_scorecard(self, request).await
    }

    async fn list_scorecards(
        &self,
        request: Request<pb::ListScorecardsRequest>,
    ) -> Result<Response<pb::ListScorecardsResponse>, Status> {
        scores::list_scorecards(self, request).await
    }

    async fn get_customer_score(
        &self,
        request: Request<pb::GetCustomerScoreRequest>,
    ) -> Result<Response<pb::GetCustomerScoreResponse>, Status> {
        scores::get_customer_score(self, request).await
    }

    async fn get_aum_by_org(
        &self,
        request: Request<pb::GetAumByOrgRequest>,
    ) -> Result<Response<pb::GetAumByOrgResponse>, Status> {
        analysis::get_aum_by_org(self, request).await
    }

    async fn get_level_migration(
        &self,
        request: Request<pb::GetLevelMigrationRequest>,
    ) -> Result<Response<pb::GetLevelMigrationResponse>, Status> {
        analysis::get_level_migration(self, request).await
    }

    async fn list_churn_signals(
        &self,
        request: Request<pb::ListChurnSignalsRequest>,
    ) -> Result<Response<pb::ListChurnSignalsResponse>, Status> {
        analysis::list_churn_signals(self, request).await
    }

    async fn get_rm_performance(
        &self,
        request: Request<pb::GetRmPerformanceRequest>,
    ) -> Result<Response<pb::GetRmPerformanceResponse>, Status> {
        analysis::get_rm_performance(self, request).await
    }

    async fn aggregate_customers(
        &self,
        request: Request<pb::AggregateCustomersRequest>,
    ) -> Result<Response<pb::AggregateCustomersResponse>, Status> {
        analysis::aggregate_customers(self, request).await
    }

    async fn issue_target(
        &self,
        request: Request<pb::IssueTargetRequest>,
    ) -> Result<Response<pb::IssueTargetResponse>, Status> {
        targets::issue_target(self, request).await
    }

    async fn decompose_target(
        &self,
        request: Request<pb::DecomposeTargetRequest>,
    ) -> Result<Response<pb::DecomposeTargetResponse>, Status> {
        targets::decompose_target(self, request).await
    }

    async fn list_targets(
        &self,
        request: Request<pb::ListTargetsRequest>,
    ) -> Result<Response<pb::ListTargetsResponse>, Status> {
        targets::list_targets(self, request).await
    }

    async fn get_target_progress(
        &self,
        request: Request<pb::GetTargetProgressRequest>,
    ) -> Result<Response<pb::GetTargetProgressResponse>, Status> {
        targets::get_target_progress(self, request).await
    }

    async fn list_customer_segment_history(
        &self,
        request: Request<pb::ListCustomerSegmentHistoryRequest>,
    ) -> Result<Response<pb::ListCustomerSegmentHistoryResponse>, Status> {
        segments::list_customer_segment_history(self, request).await
    }

    async fn list_segment_membership_changes(
        &self,
        request: Request<pb::ListSegmentMembershipChangesRequest>,
    ) -> Result<Response<pb::ListSegmentMembershipChangesResponse>, Status> {
        segments::list_segment_membership_changes(self, request).await
    }
}
