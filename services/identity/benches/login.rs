//! Login rate of identity with the configured argon2id parameters, beside the bare
//! argon2id verification rate of this machine in the same run (the floor of a login's
//! cost), and the same with a light parameter set for comparison.
//!
//! `cargo bench -p identity --bench login` prints a Markdown section for
//! `docs/benchmarks.md`. `CRM_BENCH_LOGINS` (default 200) sets the logins per case.

#![allow(clippy::unwrap_used)] // a benchmark, like a test, stops at the first surprise

use std::time::Instant;

use crm_platform::testing::TestEnv;
use crm_proto::crm::identity::v1 as pb;
use identity::secrets::PasswordHashing;
use identity::settings::Argon2Settings;
use identity::{Application, Settings};

const PASSWORD: &str = "Bootstrap-Root-2026!";
const KEK: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const CLIENTS: usize = 4;

async fn login_rate(memory_kib: u32, iterations: u32, logins: usize) -> (f64, f64) {
    let env = TestEnv::new("identity").await;
    let (m, t) = (memory_kib.to_string(), iterations.to_string());
    let settings = Settings::load_from(env.vars(&[
        ("identity.key_encryption_key", KEK),
        ("identity.bootstrap.admin_password", PASSWORD),
        ("identity.argon2.memory_kib", &m),
        ("identity.argon2.iterations", &t),
        ("telemetry.log_filter", "error"),
    ]))
    .unwrap();
    let app = Application::build(settings).await.unwrap();
    let port = app.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let client = pb::auth_service_client::AuthServiceClient::connect(format!("http://127.0.0.1:{port}")).await.unwrap();
    let login = pb::LoginRequest { login: "admin".into(), password: PASSWORD.into() };
    client.clone().login(login.clone()).await.unwrap();
    let start = Instant::now();
    let mut tasks = Vec::new();
    let mut latencies = Vec::new();
    for _ in 0..CLIENTS {
        let (mut client, login) = (client.clone(), login.clone());
        tasks.push(tokio::spawn(async move {
            let mut own = Vec::new();
            for _ in 0..logins / CLIENTS {
                let t = Instant::now();
                client.login(login.clone()).await.unwrap();
                own.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            own
        }));
    }
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let rate = latencies.len() as f64 / start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let p50 = latencies[latencies.len() / 2];
    let _ = stop.send(());
    let _ = handle.await;
    env.drop_database().await;
    (rate, p50)
}

fn verify_rate(memory_kib: u32, iterations: u32, n: usize) -> f64 {
    let hashing = PasswordHashing::new(&Argon2Settings { memory_kib, iterations, parallelism: 1 }).unwrap();
    let stored = hashing.hash(PASSWORD).unwrap();
    let start = Instant::now();
    for _ in 0..n {
        assert!(hashing.verify(PASSWORD, Some(&stored)));
    }
    n as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let logins: usize = std::env::var("CRM_BENCH_LOGINS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    println!("### Login (identity, {logins} logins per case, {CLIENTS} concurrent clients)\n");
    println!("| argon2id parameters | bare verify, 1 core (/s) | logins over gRPC (/s) | login p50 (ms) |");
    println!("|---|---|---|---|");
    for (m, t, label) in [(19_456, 2, "m=19456 KiB, t=2, p=1 (configured)"), (4_096, 1, "m=4096 KiB, t=1, p=1 (light)")]
    {
        let bare = tokio::task::spawn_blocking(move || verify_rate(m, t, logins / 2)).await.unwrap();
        let (rate, p50) = login_rate(m, t, logins).await;
        println!("| {label} | {bare:.1} | {rate:.1} | {p50:.1} |");
    }
}
