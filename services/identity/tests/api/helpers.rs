use std::time::Duration;

use crm_platform::grpc::client::BearerToken;
use crm_platform::testing::{RunningService, TestEnv};
use crm_proto::crm::identity::v1 as pb;
use identity::{Application, Settings};
use pb::auth_service_client::AuthServiceClient;
use pb::identity_admin_service_client::IdentityAdminServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub use crm_platform::testing::secrets::{ADMIN_PASSWORD, KEY_HEX as KEK};
pub const PASSWORD: &str = "Teller-Window-42";

pub type Admin = IdentityAdminServiceClient<InterceptedService<Channel, BearerToken>>;

pub struct TestApp {
    pub env: TestEnv,
    pub port: u16,
    pub pool: sqlx::PgPool,
    pub auth: AuthServiceClient<Channel>,
    channel: Channel,
    running: RunningService,
}

/// Starts identity on a free port with a fresh database, cheap password hashing and a
/// 2-second lockout.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let env = TestEnv::new("identity").await;
    let mut vars = vec![
        ("identity.key_encryption_key", KEK),
        ("identity.bootstrap.admin_password", ADMIN_PASSWORD),
        ("identity.argon2.memory_kib", "256"),
        ("identity.argon2.iterations", "1"),
        ("identity.lockout_duration_s", "2"),
        ("telemetry.log_filter", "warn"),
    ];
    vars.extend_from_slice(extra);
    let settings = Settings::load_from(env.vars(&vars)).expect("settings");
    let app = Application::build(settings).await.expect("build");
    let (pool, port) = (app.pool(), app.port());
    let running = RunningService::start(port, |stop| app.run_until_stopped(stop)).await;
    let channel = running.channel.clone();
    TestApp { env, port, pool, auth: AuthServiceClient::new(channel.clone()), channel, running }
}

impl TestApp {
    pub async fn stop(&mut self) {
        self.running.stop().await
    }

    pub async fn login(&mut self, login: &str, password: &str) -> Result<pb::TokenPair, tonic::Status> {
        self.auth
            .login(pb::LoginRequest { login: login.into(), password: password.into() })
            .await
            .map(|r| r.into_inner().tokens.unwrap())
    }

    pub fn admin_client(&self, access_token: &str) -> Admin {
        IdentityAdminServiceClient::with_interceptor(self.channel.clone(), BearerToken::new(access_token).unwrap())
    }

    pub fn anonymous_admin_client(&self) -> IdentityAdminServiceClient<Channel> {
        IdentityAdminServiceClient::new(self.channel.clone())
    }

    /// The bootstrap administrator's client.
    pub async fn admin(&mut self) -> Admin {
        let tokens = self.login("admin", ADMIN_PASSWORD).await.expect("admin logs in");
        self.admin_client(&tokens.access_token)
    }

    /// The bootstrap administrator's user id.
    pub async fn admin_id(&self) -> String {
        sqlx::query_scalar("SELECT subject FROM principal WHERE login = 'admin'").fetch_one(&self.pool).await.unwrap()
    }

    /// Creates org BJ under HO and a user there with `roles`; answers the user id.
    pub async fn user(&mut self, login: &str, roles: &[&str]) -> String {
        let mut admin = self.admin().await;
        let _ = admin
            .create_org(pb::CreateOrgRequest {
                org_id: "BJ".into(),
                name: "Beijing".into(),
                parent_org_id: "HO".into(),
            })
            .await;
        admin
            .create_user(pb::CreateUserRequest {
                login: login.into(),
                display_name: login.into(),
                org_id: "BJ".into(),
                role_codes: roles.iter().map(|r| r.to_string()).collect(),
                password: PASSWORD.into(),
            })
            .await
            .expect("create user")
            .into_inner()
            .user
            .unwrap()
            .user_id
    }

    /// A verifier like every service's: keys fetched from this identity over gRPC.
    pub fn verifier(&self) -> crm_platform::auth::Verifier {
        let channel = crm_platform::grpc::client::channel(&crm_platform::grpc::client::ClientSettings {
            endpoint: format!("http://127.0.0.1:{}", self.port),
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
        })
        .unwrap();
        crm_platform::auth::Verifier::new(
            crm_platform::auth::VerifierSettings {
                issuer: "crm-identity".into(),
                audience: "crm".into(),
                leeway_s: 30,
                key_refresh_min_interval: Duration::from_millis(0),
                cache_capacity: 100,
            },
            std::sync::Arc::new(crm_platform::auth::IdentityKeys::new(channel)),
        )
    }

    pub async fn audit_actions(&mut self, admin: &mut Admin, actor: &str) -> Vec<String> {
        admin
            .list_audit_events(pb::ListAuditEventsRequest { actor: actor.into(), page_size: 200, ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .events
            .into_iter()
            .map(|e| e.action)
            .collect()
    }
}

/// Every event the app publishes.
pub struct Events(crm_platform::testing::EventProbe);

impl Events {
    pub async fn bind(env: &TestEnv) -> Self {
        Self(crm_platform::testing::EventProbe::bind(env).await)
    }

    /// Decoded events of type `M` that arrive within `wait`, until `n` of them.
    pub async fn take<M: prost::Message + Default + prost::Name>(&self, n: usize, wait: Duration) -> Vec<M> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut out = Vec::new();
        while out.len() < n && tokio::time::Instant::now() < deadline {
            out.extend(
                self.0.take(1, deadline - tokio::time::Instant::now()).await.iter().filter_map(|e| e.decode::<M>()),
            );
        }
        out
    }
}
