//! Balance ingest benchmark against the real local PostgreSQL and RabbitMQ.
//!
//! `CRM_BENCH_CUSTOMERS=2000,10000 CRM_BENCH_DAYS=30 cargo bench -p analytics --bench ingest`
//! For each size: `COPY` of the same snapshot rows into an unindexed table (the floor of
//! the cost, the baseline), then the same rows through `LoadBalances` streams (stored,
//! resolved to their customers, every touched customer's AUM and levels replayed), and
//! the same rows again (a replay: nothing changes). Customers are made known to
//! analytics first, as customer-profile's events would. Prints a Markdown table.

use std::time::Instant;

use analytics::{Application, Settings};
use crm_platform::auth::DataScope;
use crm_platform::grpc::client::BearerToken;
use crm_platform::testing::TestEnv;
use crm_proto::crm::analytics::v1 as pb;
use crm_proto::crm::common::v1 as common;
use sqlx::Connection;

const STREAMS: usize = 4;
const PER_STREAM_CALL: usize = 20_000;

type Client = pb::analytics_service_client::AnalyticsServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerToken>,
>;

/// `days` daily snapshots of two accounts per customer, day-major (as a daily feed
/// arrives: every account of day 1, then day 2).
fn snapshots(customers: usize, days: u32) -> Vec<pb::BalanceSnapshot> {
    let mut out = Vec::with_capacity(customers * 2 * days as usize);
    for day in 1..=days {
        for c in 0..customers {
            for (account, product) in [("S", "DEP"), ("W", "WM")] {
                let amount = ((c as i64 * 7_919 + i64::from(day) * 1_013) % 9_000_000) * 100;
                out.push(pb::BalanceSnapshot {
                    account_id: format!("{account}{c:08}"),
                    customer: Some(pb::CustomerRef {
                        customer: Some(pb::customer_ref::Customer::CustomerNumber(format!(
                            "{:012}",
                            100_000_000_000 + c
                        ))),
                    }),
                    product_code: product.into(),
                    balance: Some(common::Money { amount_minor: amount, currency_code: "CNY".into() }),
                    balance_date: Some(common::Date {
                        year: 2026,
                        month: 1 + ((day - 1) / 28) as i32,
                        day: 1 + ((day - 1) % 28) as i32,
                    }),
                });
            }
        }
    }
    out
}

async fn copy_rate(rows: &[pb::BalanceSnapshot]) -> f64 {
    let env = TestEnv::new("analytics").await;
    let mut conn = sqlx::PgConnection::connect(&env.database_url()).await.expect("connect");
    sqlx::query(
        "CREATE TABLE raw_balance (account_id text, customer_number text, product_code text, amount_minor bigint,
                                   currency_code text, balance_date date)",
    )
    .execute(&mut conn)
    .await
    .expect("table");
    let mut data = String::new();
    for r in rows {
        let number = match r.customer.as_ref().and_then(|c| c.customer.as_ref()) {
            Some(pb::customer_ref::Customer::CustomerNumber(n)) => n.clone(),
            _ => String::new(),
        };
        let (money, d) = (r.balance.clone().unwrap_or_default(), r.balance_date.unwrap_or_default());
        data.push_str(&format!(
            "{}\t{number}\t{}\t{}\t{}\t{:04}-{:02}-{:02}\n",
            r.account_id, r.product_code, money.amount_minor, money.currency_code, d.year, d.month, d.day
        ));
    }
    let start = Instant::now();
    let mut copy = conn.copy_in_raw("COPY raw_balance FROM STDIN").await.expect("copy");
    copy.send(data.into_bytes()).await.expect("send");
    copy.finish().await.expect("finish");
    let rate = rows.len() as f64 / start.elapsed().as_secs_f64();
    let _ = conn.close().await;
    env.drop_database().await;
    rate
}

async fn load_rate(client: &Client, rows: &[pb::BalanceSnapshot]) -> (f64, i64, i64) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    // Streams split by account, so that two streams never write one account's row.
    let mut parts: Vec<Vec<pb::BalanceSnapshot>> = vec![Vec::new(); STREAMS];
    for r in rows {
        let shard = r.account_id.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize)) % STREAMS;
        parts[shard].push(r.clone());
    }
    for part in parts {
        let mut client = client.clone();
        tasks.push(tokio::spawn(async move {
            let (mut accepted, mut unchanged) = (0, 0);
            for chunk in part.chunks(PER_STREAM_CALL) {
                let requests: Vec<pb::LoadBalancesRequest> =
                    chunk.iter().map(|s| pb::LoadBalancesRequest { snapshot: Some(s.clone()) }).collect();
                let report = client
                    .load_balances(tokio_stream::iter(requests))
                    .await
                    .expect("load")
                    .into_inner()
                    .report
                    .unwrap_or_default();
                accepted += report.accepted_count;
                unchanged += report.unchanged_count;
            }
            (accepted, unchanged)
        }));
    }
    let (mut accepted, mut unchanged) = (0, 0);
    for t in tasks {
        let (a, u) = t.await.expect("join");
        accepted += a;
        unchanged += u;
    }
    (rows.len() as f64 / start.elapsed().as_secs_f64(), accepted, unchanged)
}

async fn run(customers: usize, days: u32) {
    let rows = snapshots(customers, days);
    let copy = copy_rate(&rows).await;

    let env = TestEnv::new("analytics").await;
    let settings = Settings::load_from(env.vars(&[
        ("database.max_connections", "16"),
        ("grpc.request_timeout_ms", "600000"),
        ("telemetry.log_filter", "error"),
    ]))
    .expect("settings");
    let tokens = crm_platform::testing::TestTokens::new();
    let app = Application::build_with_keys(settings, Some(tokens.key_source())).await.expect("build");
    let (pool, port) = (app.pool(), app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let token = tokens.token("bench-feed", &[analytics::access::INGEST], DataScope::All, "/HO/");
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut client = pb::analytics_service_client::AnalyticsServiceClient::with_interceptor(
        channel,
        BearerToken::new(&token).expect("token"),
    );
    let product = |code: &str, class: pb::AssetClass| pb::Product {
        product_code: code.into(),
        name: code.into(),
        asset_class: class as i32,
        risk_level: 1,
        aum_weight_bp: 10_000,
        family: String::new(),
    };
    client
        .upsert_products(pb::UpsertProductsRequest {
            products: vec![product("DEP", pb::AssetClass::Deposit), product("WM", pb::AssetClass::WealthManagement)],
        })
        .await
        .expect("products");
    // The customers, as CustomerCreated events would leave them.
    sqlx::query(
        "INSERT INTO customer (customer_number) SELECT lpad((100000000000 + g)::text, 12, '0') FROM generate_series(0, $1 - 1) g",
    )
    .bind(customers as i64)
    .execute(&pool)
    .await
    .expect("customers");

    let (load, accepted, _) = load_rate(&client, &rows).await;
    let (replay, _, unchanged) = load_rate(&client, &rows).await;
    let changes: i64 = sqlx::query_scalar("SELECT count(*) FROM level_change").fetch_one(&pool).await.expect("count");
    println!(
        "| {customers} × {days} days ({} rows) | {copy:.0} rows/s | {load:.0} rows/s ({:.1} % of COPY) | {replay:.0} rows/s | {accepted} accepted, {unchanged} unchanged on replay, {changes} level changes |",
        rows.len(),
        100.0 * load / copy
    );
    let _ = stop.send(());
    let _ = handle.await;
    pool.close().await;
    env.drop_database().await;
}

fn main() {
    let sizes: Vec<usize> = std::env::var("CRM_BENCH_CUSTOMERS")
        .unwrap_or_else(|_| "2000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let days: u32 = std::env::var("CRM_BENCH_DAYS").ok().and_then(|d| d.parse().ok()).unwrap_or(30);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    println!("| customers × days | COPY (baseline) | LoadBalances, 4 streams | replay | outcome |");
    println!("|---|---|---|---|---|");
    for customers in sizes {
        runtime.block_on(run(customers, days));
    }
}
