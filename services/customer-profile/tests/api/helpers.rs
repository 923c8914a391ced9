use std::sync::OnceLock;
use std::time::Duration;

use crm_platform::auth::DataScope;
use crm_platform::grpc::client::BearerToken;
use crm_platform::testing::{RunningService, TestEnv};
use crm_proto::crm::customer::v1 as pb;
use customer_profile::{Application, Settings};
use opentelemetry_sdk::trace::InMemorySpanExporter;
use pb::customer_service_client::CustomerServiceClient;
use tonic::transport::Channel;

/// Spans of every test in this binary, for the tracing test.
pub fn spans() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let telemetry = crm_platform::telemetry::init_with_exporter(
            "customer-profile",
            "test",
            "warn,crm_platform=info",
            exporter.clone(),
        )
        .expect("telemetry");
        std::mem::forget(telemetry);
        exporter
    })
}

/// A client calling as one principal.
pub type Client = CustomerServiceClient<tonic::service::interceptor::InterceptedService<Channel, BearerToken>>;

/// Every customer permission except `customer.pii.read`, scope all: what most tests
/// call with (masked PII, no data-scope filtering).
pub const OPERATOR_PERMISSIONS: &[&str] = &[
    "customer.read",
    "customer.write",
    "customer.details.write",
    "customer.assign",
    "customer.steward",
    "customer.audit.read",
];

pub struct TestApp {
    pub env: TestEnv,
    pub port: u16,
    /// Calls as an operator (see [`OPERATOR_PERMISSIONS`]).
    pub client: Client,
    /// Signs tokens the app accepts.
    pub tokens: crm_platform::testing::TestTokens,
    channel: Channel,
    pub pool: sqlx::PgPool,
    pub events: Events,
    running: RunningService,
}

/// Starts customer-profile on a free port with a fresh database and exchange.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// [`spawn_app`] with extra settings, e.g. `("grpc.concurrency_limit", "1")`.
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    spans();
    let env = TestEnv::new("customer-profile").await;
    let mut vars = vec![("customer.pii_key", PII_KEY)];
    vars.extend_from_slice(extra);
    let settings = Settings::load_from(env.vars(&vars)).expect("settings");
    let tokens = crm_platform::testing::TestTokens::new();
    let app = Application::build_with_keys(settings, Some(tokens.key_source())).await.expect("build");
    let pool = app.pool();
    let port = app.port();
    let running = RunningService::start(port, |stop| app.run_until_stopped(stop)).await;
    let channel = running.channel.clone();
    let events = Events::bind(&env).await;
    let operator = tokens.token("operator-1", OPERATOR_PERMISSIONS, DataScope::All, "/HO/");
    TestApp { env, port, client: client_with(&channel, &operator), tokens, channel, pool, events, running }
}

fn client_with(channel: &Channel, token: &str) -> Client {
    CustomerServiceClient::with_interceptor(channel.clone(), BearerToken::new(token).expect("ascii token"))
}

impl TestApp {
    /// A client calling with `token`.
    pub fn client_as(&self, token: &str) -> Client {
        client_with(&self.channel, token)
    }

    /// A client for a user with `perms` and `scope` at `org_path`.
    pub fn client_for(&self, subject: &str, perms: &[&str], scope: DataScope, org_path: &str) -> Client {
        self.client_as(&self.tokens.token(subject, perms, scope, org_path))
    }

    /// A client without any token.
    pub fn anonymous_client(&self) -> CustomerServiceClient<Channel> {
        CustomerServiceClient::new(self.channel.clone())
    }

    /// Sends the stop signal and waits for a clean exit.
    pub async fn stop(&mut self) {
        self.running.stop().await
    }

    /// A future that sends the stop signal and waits for the exit, for tests that stop
    /// the app while a call is in flight.
    pub fn stop_handle(&mut self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.running.stop_handle()
    }

    pub async fn upsert(&mut self, record: pb::SourceRecord) -> Result<pb::UpsertSourceRecordResponse, tonic::Status> {
        self.client
            .upsert_source_record(pb::UpsertSourceRecordRequest { record: Some(record) })
            .await
            .map(|r| r.into_inner())
    }

    pub async fn customer(&mut self, number: &str) -> pb::Customer {
        self.client
            .get_customer(pb::GetCustomerRequest {
                lookup: Some(pb::get_customer_request::Lookup::CustomerNumber(number.into())),
            })
            .await
            .expect("get customer")
            .into_inner()
            .customer
            .expect("customer")
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(&self.pool).await.expect("count")
    }
}

/// Every event the app publishes (the kit's probe, with this crate's 10-second wait).
pub struct Events(crm_platform::testing::EventProbe);

/// One received event.
pub type Received = crm_platform::testing::CaughtEvent;

impl Events {
    async fn bind(env: &TestEnv) -> Self {
        Self(crm_platform::testing::EventProbe::bind(env).await)
    }

    /// Waits until `n` events have arrived (or 10 s passed) and returns all received.
    pub async fn take(&self, n: usize) -> Vec<Received> {
        self.0.take(n, Duration::from_secs(10)).await
    }

    /// Events of one type, decoded.
    pub fn of<M: prost::Message + Default + prost::Name>(events: &[Received]) -> Vec<M> {
        events.iter().filter(|e| e.event_type == M::full_name()).map(|e| e.decode::<M>().expect("decodes")).collect()
    }
}

/// A valid personal record.
pub fn person(system: &str, id: &str, id_number: &str, name: &str) -> pb::SourceRecord {
    pb::SourceRecord {
        key: Some(pb::SourceKey { source_system: system.into(), source_customer_id: id.into() }),
        source_version: 1,
        party_kind: pb::PartyKind::Personal as i32,
        id_type: pb::IdType::ResidentId as i32,
        id_number: id_number.into(),
        name: name.into(),
        gender: pb::Gender::Unspecified as i32,
        birth_date: None,
        nationality: "CHN".into(),
        mobile_phone: String::new(),
        email: String::new(),
        address: String::new(),
        occupation: String::new(),
    }
}

/// The tests' PII master key (the kit's shared test key).
pub use crm_platform::testing::secrets::KEY_HEX as PII_KEY;

/// A well-known valid 18-digit resident ID and its 15-digit form.
pub const ID18: &str = "11010519491231002X";
pub const ID15: &str = "110105491231002";
