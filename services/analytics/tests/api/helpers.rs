use std::time::Duration;

use analytics::{Application, Settings};
use crm_platform::auth::DataScope;
use crm_platform::grpc::client::BearerToken;
use crm_platform::testing::{EventProbe, RunningService, TestEnv, TestTokens, eventually};
use crm_proto::crm::analytics::v1 as pb;
use crm_proto::crm::analytics::v1::analytics_service_client::AnalyticsServiceClient;
use crm_proto::crm::common::v1 as common;
use crm_proto::crm::customer::v1 as cpb;
use tonic::transport::Channel;

/// A client calling as one principal.
pub type Client = AnalyticsServiceClient<tonic::service::interceptor::InterceptedService<Channel, BearerToken>>;

/// analytics on a free port with its own database and exchange.
pub struct TestApp {
    /// Calls with every permission of this service.
    pub client: Client,
    /// Signs tokens the app accepts.
    pub tokens: TestTokens,
    /// Every event the app publishes (bound before the first call).
    pub events: EventProbe,
    pub pool: sqlx::PgPool,
    pub env: TestEnv,
    running: RunningService,
}

/// Starts analytics with a fresh database and exchange; `extra` settings (short keys).
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let env = TestEnv::new("analytics").await;
    let settings = Settings::load_from(env.vars(extra)).expect("settings");
    let tokens = TestTokens::new();
    let app = Application::build_with_keys(settings, Some(tokens.key_source())).await.expect("build");
    let (pool, port) = (app.pool(), app.port());
    let running = RunningService::start(port, |stop| app.run_until_stopped(stop)).await;
    let events = EventProbe::bind(&env).await;
    let perms = [analytics::access::READ, analytics::access::INGEST, analytics::access::DEFINE];
    let token = tokens.token("operator-1", &perms, DataScope::All, "/HO/");
    let client = client_with(&running.channel, &token);
    TestApp { client, tokens, events, pool, env, running }
}

/// Starts analytics with a fresh database and exchange.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

fn client_with(channel: &Channel, token: &str) -> Client {
    AnalyticsServiceClient::with_interceptor(channel.clone(), BearerToken::new(token).expect("ascii"))
}

impl TestApp {
    /// A client for a user with `perms`.
    pub fn client_for(&self, subject: &str, perms: &[&str]) -> Client {
        client_with(&self.running.channel, &self.tokens.token(subject, perms, DataScope::All, "/HO/"))
    }

    /// A client for a user with `perms` and data scope `scope` at org path `org_path`.
    pub fn scoped_client(&self, subject: &str, perms: &[&str], scope: DataScope, org_path: &str) -> Client {
        client_with(&self.running.channel, &self.tokens.token(subject, perms, scope, org_path))
    }

    /// A client without any token.
    pub fn anonymous_client(&self) -> AnalyticsServiceClient<Channel> {
        AnalyticsServiceClient::new(self.running.channel.clone())
    }

    /// Stops the app and waits for a clean exit.
    pub async fn stop(&mut self) {
        self.running.stop().await
    }

    /// Waits until the revaluer has caught up: no customer due, RFM rescored after the
    /// last revaluation.
    pub async fn settled(&self) {
        settled(&self.pool).await
    }

    /// Publishes a customer-profile event and waits until the app has applied it (and
    /// the revaluer has caught up with it).
    pub async fn customer_event<M: prost::Name>(&self, subject: &str, message: &M) {
        let id = self.env.publish("crm/customer-profile", subject, message).await;
        let applied = eventually(Duration::from_secs(15), || async {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM crm_kit.inbox WHERE message_id = $1")
                .bind(&id)
                .fetch_one(&self.pool)
                .await
                .unwrap_or(0)
                == 1
        })
        .await;
        assert!(applied, "analytics applied the {} event", M::full_name());
        self.settled().await;
    }

    /// customer-profile announces customer `number` created from source record `source`.
    pub async fn customer_created(&self, number: &str, source: (&str, &str)) {
        let event = cpb::CustomerCreated {
            customer_number: number.into(),
            party_kind: cpb::PartyKind::Personal as i32,
            source: Some(source_key(source)),
            demographics: None,
        };
        self.customer_event(number, &event).await;
    }

    /// Stores the standard test catalogue: DEP (deposit), WM (wealth, weight 100 %),
    /// WM50 (wealth at 50 %), LOAN.
    pub async fn catalogue(&mut self) {
        let products = vec![
            product("DEP", pb::AssetClass::Deposit, 10_000),
            product("WM", pb::AssetClass::WealthManagement, 10_000),
            product("WM50", pb::AssetClass::WealthManagement, 5_000),
            product("LOAN", pb::AssetClass::Loan, 10_000),
        ];
        let outcomes = self.client.upsert_products(pb::UpsertProductsRequest { products }).await.unwrap().into_inner();
        assert!(outcomes.outcomes.iter().all(|o| o.violations.is_empty()));
    }

    /// Loads `snapshots` in one stream and waits for the revaluer.
    pub async fn load(&mut self, snapshots: Vec<pb::BalanceSnapshot>) -> pb::FactsReport {
        let stream = futures::stream::iter(
            snapshots.into_iter().map(|s| pb::LoadBalancesRequest { snapshot: Some(s) }).collect::<Vec<_>>(),
        );
        let report = self.client.load_balances(stream).await.unwrap().into_inner().report.unwrap();
        self.settled().await;
        report
    }

    /// The value card of `number`, once the revaluer has caught up.
    pub async fn value(&mut self, number: &str) -> pb::GetCustomerValueResponse {
        self.settled().await;
        self.client
            .get_customer_value(pb::GetCustomerValueRequest { customer_number: number.into() })
            .await
            .unwrap()
            .into_inner()
    }

    /// The next `n` LevelChanged events (others on the exchange are skipped), with their
    /// subjects; fewer when they do not come within 10 s.
    pub async fn level_changes(&self, n: usize) -> Vec<(String, pb::LevelChange)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut out = Vec::new();
        while out.len() < n && tokio::time::Instant::now() < deadline {
            for event in self.events.take(1, Duration::from_millis(500)).await {
                if let Some(changed) = event.decode::<pb::LevelChanged>() {
                    out.push((event.subject.clone(), changed.change.expect("change")));
                }
            }
        }
        out
    }

    /// The next `n` SegmentMembershipChanged events (others on the exchange are
    /// skipped), with their subjects; fewer when they do not come within 10 s.
    pub async fn membership_changes(&self, n: usize) -> Vec<(String, pb::SegmentMembershipChange)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut out = Vec::new();
        while out.len() < n && tokio::time::Instant::now() < deadline {
            for event in self.events.take(1, Duration::from_millis(500)).await {
                if let Some(changed) = event.decode::<pb::SegmentMembershipChanged>() {
                    out.push((event.subject.clone(), changed.change.expect("change")));
                }
            }
        }
        out
    }

    /// Defines tag `code`: a rule tag with `rule`, a manual one when `rule` is empty.
    pub async fn define_tag(&mut self, code: &str, rule: &str) -> pb::Tag {
        let kind = if rule.is_empty() { pb::TagKind::Manual } else { pb::TagKind::Rule };
        let tag = pb::Tag {
            code: code.into(),
            name: format!("{code} 标签"),
            kind: kind as i32,
            rule: rule.into(),
            version: 0,
        };
        self.client.define_tag(pb::DefineTagRequest { tag: Some(tag) }).await.unwrap().into_inner().tag.unwrap()
    }

    /// The codes of the tags `number` has, with their sources.
    pub async fn tags_of(&mut self, number: &str) -> Vec<(String, pb::TagKind)> {
        let answer = self
            .client
            .get_customer_tags(pb::GetCustomerTagsRequest { customer_number: number.into() })
            .await
            .unwrap()
            .into_inner();
        answer.tags.into_iter().map(|t| (t.tag_code.clone(), t.source())).collect()
    }

    /// Closes `month`, waiting for the recompute to finish.
    pub async fn close_month(&mut self, month: &str) -> pb::RecomputeProgress {
        let mut stream =
            self.client.close_month(pb::CloseMonthRequest { month: month.into() }).await.unwrap().into_inner();
        let mut last = None;
        while let Some(step) = stream.message().await.unwrap() {
            last = step.progress;
        }
        let last = last.expect("progress");
        assert!(last.finished);
        last
    }
}

/// Waits until the revaluer of the app on `pool` has caught up: no customer due, RFM
/// rescored after the last revaluation.
pub async fn settled(pool: &sqlx::PgPool) {
    let settled = eventually(Duration::from_secs(30), || async {
        analytics::store::revaluation::backlog(pool).await.is_ok_and(|b| b.settled())
    })
    .await;
    assert!(settled, "the revaluer caught up");
}

/// A product of the test catalogue.
pub fn product(code: &str, class: pb::AssetClass, weight_bp: i32) -> pb::Product {
    pb::Product {
        product_code: code.into(),
        name: format!("{code} 产品"),
        asset_class: class as i32,
        risk_level: 2,
        aum_weight_bp: weight_bp,
        family: String::new(),
    }
}

/// A source key.
pub fn source_key((system, id): (&str, &str)) -> cpb::SourceKey {
    cpb::SourceKey { source_system: system.into(), source_customer_id: id.into() }
}

/// A customer named by number.
pub fn by_number(number: &str) -> Option<pb::CustomerRef> {
    Some(pb::CustomerRef { customer: Some(pb::customer_ref::Customer::CustomerNumber(number.into())) })
}

/// A customer named by source key.
pub fn by_source(source: (&str, &str)) -> Option<pb::CustomerRef> {
    Some(pb::CustomerRef { customer: Some(pb::customer_ref::Customer::SourceKey(source_key(source))) })
}

/// A date.
pub fn day(year: i32, month: i32, day: i32) -> Option<common::Date> {
    Some(common::Date { year, month, day })
}

/// A CNY balance snapshot of `yuan`.
pub fn cny(
    account: &str,
    customer: Option<pb::CustomerRef>,
    product: &str,
    yuan: i64,
    date: Option<common::Date>,
) -> pb::BalanceSnapshot {
    pb::BalanceSnapshot {
        account_id: account.into(),
        customer,
        product_code: product.into(),
        balance: Some(common::Money { amount_minor: yuan * 100, currency_code: "CNY".into() }),
        balance_date: date,
    }
}
