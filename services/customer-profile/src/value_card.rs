//! The value card of the 360° view: what analytics says the customer is worth, asked
//! under a deadline with the caller's token passed on (so analytics applies the
//! caller's permissions). The view answers without it, and says why, when analytics is
//! not configured, late, down, refuses the caller or knows no balance of the customer.

use std::time::Duration;

use crm_platform::PlatformError;
use crm_platform::grpc::client::{ClientSettings, TracedChannel, channel};
use crm_proto::crm::analytics::v1 as apb;
use crm_proto::crm::analytics::v1::analytics_service_client::AnalyticsServiceClient;
use crm_proto::crm::customer::v1 as pb;
use tonic::Code;

use crate::settings::AnalyticsClientSettings;

/// Asks analytics for value cards.
#[derive(Debug, Clone)]
pub struct ValueCards {
    client: Option<AnalyticsServiceClient<TracedChannel>>,
    timeout: Duration,
}

impl ValueCards {
    /// A client of the configured analytics (none when the endpoint is empty); connects
    /// lazily, so customer-profile starts while analytics is down.
    pub fn new(settings: &AnalyticsClientSettings) -> Result<Self, PlatformError> {
        let timeout = Duration::from_millis(settings.timeout_ms);
        let client = if settings.endpoint.is_empty() {
            None
        } else {
            let settings = ClientSettings { endpoint: settings.endpoint.clone(), timeout, connect_timeout: timeout };
            Some(AnalyticsServiceClient::new(channel(&settings)?))
        };
        Ok(Self { client, timeout })
    }

    /// The value card of `customer_number`, or why there is none.
    pub async fn of(&self, customer_number: &str) -> (Option<pb::ValueCard>, pb::ValueCardStatus) {
        let Some(client) = &self.client else {
            return (None, pb::ValueCardStatus::NotConfigured);
        };
        let request = apb::GetCustomerValueRequest { customer_number: customer_number.to_string() };
        let answer = tokio::time::timeout(self.timeout, client.clone().get_customer_value(request)).await;
        match answer {
            Ok(Ok(value)) => (Some(card(value.into_inner())), pb::ValueCardStatus::Shown),
            Ok(Err(status)) => match status.code() {
                Code::NotFound => (None, pb::ValueCardStatus::NotValued),
                Code::PermissionDenied => (None, pb::ValueCardStatus::NotPermitted),
                code => {
                    tracing::warn!(?code, message = status.message(), "value card unavailable");
                    (None, pb::ValueCardStatus::Unavailable)
                }
            },
            Err(_) => {
                tracing::warn!(timeout_ms = self.timeout.as_millis() as u64, "value card late");
                (None, pb::ValueCardStatus::Unavailable)
            }
        }
    }
}

/// analytics' answer as the view shows it.
fn card(v: apb::GetCustomerValueResponse) -> pb::ValueCard {
    let class = |c: i32| match apb::AssetClass::try_from(c) {
        Ok(apb::AssetClass::Deposit) => "deposit",
        Ok(apb::AssetClass::WealthManagement) => "wealth_management",
        Ok(apb::AssetClass::Settlement) => "settlement",
        Ok(apb::AssetClass::Loan) => "loan",
        Ok(apb::AssetClass::ChannelProduct) => "channel_product",
        _ => "unspecified",
    };
    pb::ValueCard {
        level_code: v.level_code,
        level_name: v.level_name,
        level_since: v.level_since,
        on_watch: v.on_watch,
        weighted_aum_minor: v.weighted_aum_minor,
        aum: v
            .aum
            .into_iter()
            .map(|a| pb::ClassValue {
                asset_class: class(a.asset_class).to_string(),
                point_in_time_minor: a.point_in_time_minor,
                month_daily_average_minor: a.month_daily_average_minor,
            })
            .collect(),
        latest_closed_month: v.latest_closed_month,
        as_of: v.as_of,
        rfm_code: v.rfm.map_or(0, |r| r.code),
        grades: v
            .scores
            .into_iter()
            .map(|s| pb::ValueCardGrade {
                scorecard_code: s.scorecard_code,
                version: s.version,
                total: s.total,
                grade: s.grade,
            })
            .collect(),
        tags: v.tags,
    }
}
