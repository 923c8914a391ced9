//! Cost of the authorization layer per call, beside the same call without it, in the
//! same run.
//!
//! Two measurements:
//! - the layer alone around a service that answers at once (tower, no network): token
//!   verification from the cache, full verification of a never-seen token, and no
//!   layer;
//! - a real gRPC call over loopback (`grpc.health.v1.Health/Check`, tonic client and
//!   server) with the layer requiring a permission, and without the layer.
//!
//! `cargo bench -p crm-platform --bench auth_layer` prints a Markdown section for
//! `docs/benchmarks.md`. `CRM_BENCH_CALLS` (default 20000) sets the calls per case.

#![allow(clippy::unwrap_used)] // a benchmark, like a test, stops at the first surprise

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_platform::auth::{AuthLayer, DataScope, Policy, Requirement, Verifier, VerifierSettings};
use crm_platform::testing::TestTokens;
use hdrhistogram::Histogram;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::{Layer, Service, ServiceExt};

const POLICY: Policy = &[("/grpc.health.v1.Health/Check", Requirement::Permission("customer.read"))];

fn verifier(tokens: &TestTokens) -> Arc<Verifier> {
    Arc::new(Verifier::new(
        VerifierSettings {
            issuer: "crm-identity".into(),
            audience: "crm".into(),
            leeway_s: 30,
            key_refresh_min_interval: Duration::from_secs(5),
            cache_capacity: 100_000,
        },
        tokens.key_source(),
    ))
}

fn request(token: Option<&str>) -> http::Request<()> {
    let mut builder = http::Request::builder().uri("http://bench/grpc.health.v1.Health/Check");
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(()).unwrap()
}

struct Row {
    case: &'static str,
    hist: Histogram<u64>,
}

fn row(case: &'static str) -> Row {
    Row { case, hist: Histogram::new_with_bounds(1, 60_000_000, 3).unwrap() }
}

fn ns(d: Duration) -> u64 {
    d.as_nanos().max(1) as u64
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let calls: usize = std::env::var("CRM_BENCH_CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let tokens = TestTokens::new();
    let token = tokens.token("rm-1", &["customer.read"], DataScope::Own, "/HO/BJ/BJ01/");

    // The layer alone.
    let ok =
        tower::service_fn(|_req: http::Request<()>| async { Ok::<_, Infallible>(http::Response::new(String::new())) });
    let mut bare = ok;
    let mut layered = AuthLayer::new(verifier(&tokens), POLICY).layer(ok);
    let mut uncached = AuthLayer::new(verifier(&tokens), POLICY).layer(ok);
    let fresh: Vec<String> = (0..calls)
        .map(|i| tokens.token(&format!("rm-{i}"), &["customer.read"], DataScope::Own, "/HO/BJ/BJ01/"))
        .collect();
    let mut in_process =
        [row("no layer"), row("layer, token seen before (cached)"), row("layer, new token each call (Ed25519 verify)")];
    // Warm up: keys fetched, cache filled with the repeated token.
    layered.ready().await.unwrap().call(request(Some(&token))).await.unwrap();
    uncached.ready().await.unwrap().call(request(Some(&token))).await.unwrap();
    for (i, new_token) in fresh.iter().enumerate() {
        let t = Instant::now();
        bare.ready().await.unwrap().call(request(Some(&token))).await.unwrap();
        in_process[0].hist.record(ns(t.elapsed())).unwrap();
        let t = Instant::now();
        let r = layered.ready().await.unwrap().call(request(Some(&token))).await.unwrap();
        in_process[1].hist.record(ns(t.elapsed())).unwrap();
        assert_eq!(r.headers().get("grpc-status"), None, "call {i} refused");
        let t = Instant::now();
        let r = uncached.ready().await.unwrap().call(request(Some(new_token))).await.unwrap();
        in_process[2].hist.record(ns(t.elapsed())).unwrap();
        assert_eq!(r.headers().get("grpc-status"), None, "call {i} refused");
    }

    // A real call over loopback, with and without the layer.
    let mut e2e = [row("Health/Check over loopback, no layer"), row("Health/Check over loopback, with layer")];
    let mut clients = Vec::new();
    for with_layer in [false, true] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_reporter, health) = tonic_health::server::health_reporter();
        let layer = with_layer.then(|| AuthLayer::new(verifier(&tokens), POLICY));
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .layer(tower::ServiceBuilder::new().option_layer(layer).into_inner())
                .add_service(health)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
        clients.push(HealthClient::new(channel));
    }
    let call = |client: &mut HealthClient<tonic::transport::Channel>| {
        let mut request = tonic::Request::new(HealthCheckRequest { service: String::new() });
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        let mut client = client.clone();
        async move { client.check(request).await }
    };
    for client in &mut clients {
        for _ in 0..1_000 {
            call(client).await.unwrap();
        }
    }
    // Interleaved so that both see the same machine state.
    for _ in 0..calls {
        for (i, client) in clients.iter_mut().enumerate() {
            let t = Instant::now();
            call(client).await.unwrap();
            e2e[i].hist.record(ns(t.elapsed())).unwrap();
        }
    }

    println!("### Authorization layer (calls per case: {calls})\n");
    println!("| case | p50 µs | p99 µs | mean µs |");
    println!("|---|---|---|---|");
    for r in in_process.iter().chain(e2e.iter()) {
        println!(
            "| {} | {:.2} | {:.2} | {:.2} |",
            r.case,
            r.hist.value_at_quantile(0.5) as f64 / 1000.0,
            r.hist.value_at_quantile(0.99) as f64 / 1000.0,
            r.hist.mean() / 1000.0
        );
    }
    let added = |a: &Row, b: &Row| b.hist.mean() - a.hist.mean();
    let cached = added(&in_process[0], &in_process[1]) / 1000.0;
    let full = added(&in_process[0], &in_process[2]) / 1000.0;
    // Loopback calls have a long tail from scheduling on a busy machine; the medians
    // compare like with like.
    let median = |r: &Row| r.hist.value_at_quantile(0.5) as f64;
    let e2e_added = median(&e2e[1]) - median(&e2e[0]);
    println!();
    println!(
        "- added per call by the layer, in process (means): {cached:.2} µs with a token seen before, {full:.2} µs with a new token"
    );
    println!(
        "- added per real call (medians): {:.2} µs = {:.1} % of the call without the layer ({:.1} µs)",
        e2e_added / 1000.0,
        100.0 * e2e_added / median(&e2e[0]),
        median(&e2e[0]) / 1000.0
    );
}
