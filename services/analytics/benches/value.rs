//! Customer value benchmark against the real local PostgreSQL and RabbitMQ, with the
//! baselines measured in the same run.
//!
//! `CRM_BENCH_CUSTOMERS=10000,50000 CRM_BENCH_TXNS=20 cargo bench -p analytics --bench value`
//!
//! For each size (customers, two accounts each, 31 daily balances of January 2026, and
//! `CRM_BENCH_TXNS` transactions per customer over the year before):
//! 1. ingest: `COPY` of the same rows into unindexed tables (the baseline), then
//!    `LoadBalances` and `RecordTransactions` streams (stored and marked due), and the
//!    time the revaluer takes to catch up with them;
//! 2. full re-rating: `CloseMonth 2026-01` and `RecomputeAll` (AUM, levels, months,
//!    tags, RFM), beside DuckDB computing the monthly daily-average AUM per class and
//!    the RFM codes from the same raw rows (`benches/duckdb_value.py`, the Python
//!    package), and whether both give identical figures;
//! 3. incremental: balances at `CRM_BENCH_RATE` facts/s (default 2,000) for
//!    `CRM_BENCH_SECONDS` (default 20), and the time from each batch accepted to its
//!    customers revalued (p50, p99, max);
//! 4. a segment of every customer evaluated and its snapshot streamed.
//!
//! Prints Markdown tables.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use analytics::{Application, Settings};
use crm_platform::auth::DataScope;
use crm_platform::grpc::client::BearerToken;
use crm_platform::testing::TestEnv;
use crm_proto::crm::analytics::v1 as pb;
use crm_proto::crm::common::v1 as common;
use sqlx::{Connection, PgPool};

const STREAMS: usize = 4;
const PER_STREAM_CALL: usize = 20_000;
/// 2026-01-01 00:00 UTC.
const NEW_YEAR: i64 = 1_767_225_600;
const DAY: i64 = 86_400;

type Client = pb::analytics_service_client::AnalyticsServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerToken>,
>;

fn number(c: usize) -> String {
    format!("{:012}", 100_000_000_000 + c)
}

fn by_number(c: usize) -> Option<pb::CustomerRef> {
    Some(pb::CustomerRef { customer: Some(pb::customer_ref::Customer::CustomerNumber(number(c))) })
}

/// A small deterministic generator.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// 31 January day-end balances of a savings (DEP) and a wealth (WM) account per
/// customer, day-major (as a daily feed arrives).
fn balances(customers: usize) -> Vec<pb::BalanceSnapshot> {
    let mut out = Vec::with_capacity(customers * 62);
    for day in 1..=31 {
        for c in 0..customers {
            for (account, product) in [("S", "DEP"), ("W", "WM")] {
                let amount = ((c as i64 * 7_919 + i64::from(day) * 1_013) % 9_000_000) * 100;
                out.push(pb::BalanceSnapshot {
                    account_id: format!("{account}{c:08}"),
                    customer: by_number(c),
                    product_code: product.into(),
                    balance: Some(common::Money { amount_minor: amount, currency_code: "CNY".into() }),
                    balance_date: Some(common::Date { year: 2026, month: 1, day }),
                });
            }
        }
    }
    out
}

/// `per_customer` transactions per customer, posted over the 400 days before 2026-02-01
/// (some outside a 365-day window), in the families `cards` and `funds`.
fn transactions(customers: usize, per_customer: usize) -> Vec<pb::Transaction> {
    let mut rng = Lcg(42);
    let mut out = Vec::with_capacity(customers * per_customer);
    for c in 0..customers {
        for k in 0..per_customer {
            let (product, account) = if rng.below(2) == 0 { ("CARD", "K") } else { ("FUND", "F") };
            out.push(pb::Transaction {
                transaction_id: format!("T{c:08}-{k:04}"),
                customer: by_number(c),
                account_id: format!("{account}{c:08}"),
                product_code: product.into(),
                amount: Some(common::Money {
                    amount_minor: (1 + rng.below(50_000) as i64) * 100,
                    currency_code: "CNY".into(),
                }),
                channel: pb::Channel::Mobile as i32,
                posted_time: Some(prost_types::Timestamp {
                    seconds: NEW_YEAR + 31 * DAY - 1 - rng.below(400) as i64 * DAY - rng.below(DAY as u64) as i64,
                    nanos: 0,
                }),
                region_code: String::new(),
            });
        }
    }
    out
}

fn balance_line(r: &pb::BalanceSnapshot) -> String {
    let number = match r.customer.as_ref().and_then(|c| c.customer.as_ref()) {
        Some(pb::customer_ref::Customer::CustomerNumber(n)) => n.clone(),
        _ => String::new(),
    };
    let (money, d) = (r.balance.clone().unwrap_or_default(), r.balance_date.unwrap_or_default());
    let class = if r.product_code == "DEP" { "deposit" } else { "wealth_management" };
    format!(
        "{}\t{number}\t{}\t{class}\t{}\t{}\t{:04}-{:02}-{:02}\n",
        r.account_id, r.product_code, money.amount_minor, money.currency_code, d.year, d.month, d.day
    )
}

fn transaction_line(t: &pb::Transaction) -> String {
    let number = match t.customer.as_ref().and_then(|c| c.customer.as_ref()) {
        Some(pb::customer_ref::Customer::CustomerNumber(n)) => n.clone(),
        _ => String::new(),
    };
    let money = t.amount.clone().unwrap_or_default();
    let family = if t.product_code == "CARD" { "cards" } else { "funds" };
    let posted = time::OffsetDateTime::from_unix_timestamp(t.posted_time.unwrap_or_default().seconds).expect("time");
    format!(
        "{}\t{number}\t{}\t{family}\t{}\t{}\t{}\n",
        t.transaction_id,
        t.product_code,
        money.amount_minor,
        money.currency_code,
        posted.format(&time::format_description::well_known::Rfc3339).expect("format")
    )
}

/// COPY of `lines` into a fresh unindexed table `create`; rows/s.
async fn copy_rate(create: &str, table: &str, lines: &str, rows: usize) -> f64 {
    let env = TestEnv::new("analytics").await;
    let mut conn = sqlx::PgConnection::connect(&env.database_url()).await.expect("connect");
    sqlx::query(sqlx::AssertSqlSafe(create.to_string())).execute(&mut conn).await.expect("table");
    let start = Instant::now();
    let statement = format!("COPY {table} FROM STDIN");
    let mut copy = conn.copy_in_raw(&statement).await.expect("copy");
    copy.send(lines.as_bytes().to_vec()).await.expect("send");
    copy.finish().await.expect("finish");
    let rate = rows as f64 / start.elapsed().as_secs_f64();
    let _ = conn.close().await;
    env.drop_database().await;
    rate
}

/// Sends `items` as `STREAMS` concurrent client streams of up to PER_STREAM_CALL each,
/// sharded by `shard_key`; rows/s and the accepted count.
async fn stream_rate<T: Clone + Send + Sync + 'static>(
    client: &Client,
    items: &[T],
    shard_key: fn(&T) -> &str,
    call: fn(Client, Vec<T>) -> futures::future::BoxFuture<'static, i64>,
) -> (f64, i64) {
    let start = Instant::now();
    let mut parts: Vec<Vec<T>> = vec![Vec::new(); STREAMS];
    for item in items {
        let shard = shard_key(item).bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize)) % STREAMS;
        parts[shard].push(item.clone());
    }
    let mut tasks = Vec::new();
    for part in parts {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut accepted = 0;
            for chunk in part.chunks(PER_STREAM_CALL) {
                accepted += call(client.clone(), chunk.to_vec()).await;
            }
            accepted
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await.expect("join");
    }
    (items.len() as f64 / start.elapsed().as_secs_f64(), accepted)
}

fn load_call(mut client: Client, chunk: Vec<pb::BalanceSnapshot>) -> futures::future::BoxFuture<'static, i64> {
    Box::pin(async move {
        let requests: Vec<_> = chunk.into_iter().map(|s| pb::LoadBalancesRequest { snapshot: Some(s) }).collect();
        let report = client.load_balances(tokio_stream::iter(requests)).await.expect("load").into_inner().report;
        report.unwrap_or_default().accepted_count
    })
}

fn record_call(mut client: Client, chunk: Vec<pb::Transaction>) -> futures::future::BoxFuture<'static, i64> {
    Box::pin(async move {
        let requests: Vec<_> =
            chunk.into_iter().map(|t| pb::RecordTransactionsRequest { transaction: Some(t) }).collect();
        let report = client.record_transactions(tokio_stream::iter(requests)).await.expect("record").into_inner();
        report.report.unwrap_or_default().accepted_count
    })
}

/// Waits until the revaluer has caught up; how long that took.
async fn settle(pool: &PgPool) -> Duration {
    let start = Instant::now();
    loop {
        let backlog = analytics::store::revaluation::backlog(pool).await.expect("backlog");
        if backlog.settled() {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The figures DuckDB computes from the raw rows, and its time.
struct DuckDb {
    seconds: f64,
    month_aum: BTreeMap<(String, String), i64>,
    rfm: BTreeMap<String, i32>,
}

fn duckdb(balances: &str, transactions: &str) -> Option<DuckDb> {
    let dir = std::env::temp_dir().join(format!("crm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    std::fs::write(dir.join("balances.tsv"), balances).ok()?;
    std::fs::write(dir.join("transactions.tsv"), transactions).ok()?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/duckdb_value.py");
    let out = std::process::Command::new("python3").arg(script).arg(&dir).output().ok()?;
    if !out.status.success() {
        eprintln!("duckdb baseline failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let seconds: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    let mut month_aum = BTreeMap::new();
    for line in std::fs::read_to_string(dir.join("month_aum.tsv")).ok()?.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        month_aum.insert((f[0].to_string(), f[1].to_string()), f[2].parse().ok()?);
    }
    let mut rfm = BTreeMap::new();
    for line in std::fs::read_to_string(dir.join("rfm.tsv")).ok()?.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        rfm.insert(f[0].to_string(), f[1].parse().ok()?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Some(DuckDb { seconds, month_aum, rfm })
}

struct Service {
    env: TestEnv,
    pool: PgPool,
    client: Client,
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<Result<(), crm_platform::PlatformError>>,
}

async fn start_service() -> Service {
    let env = TestEnv::new("analytics").await;
    let settings = Settings::load_from(env.vars(&[
        ("database.max_connections", "16"),
        ("grpc.request_timeout_ms", "3600000"),
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
    let perms = [analytics::access::INGEST, analytics::access::READ, analytics::access::DEFINE];
    let token = tokens.token("bench-feed", &perms, DataScope::All, "/HO/");
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let client = pb::analytics_service_client::AnalyticsServiceClient::with_interceptor(
        channel,
        BearerToken::new(&token).expect("token"),
    )
    .max_decoding_message_size(64 * 1024 * 1024);
    Service { env, pool, client, stop, handle }
}

async fn run(customers: usize, per_customer: usize) {
    let balance_rows = balances(customers);
    let transaction_rows = transactions(customers, per_customer);
    let balance_text: String = balance_rows.iter().map(balance_line).collect();
    let transaction_text: String = transaction_rows.iter().map(transaction_line).collect();
    let copy_balances = copy_rate(
        "CREATE TABLE raw_balance (account_id text, customer_number text, product_code text, asset_class text,
                                   amount_minor bigint, currency_code text, balance_date date)",
        "raw_balance",
        &balance_text,
        balance_rows.len(),
    )
    .await;
    let copy_transactions = copy_rate(
        "CREATE TABLE raw_transaction (transaction_id text, customer_number text, product_code text, family text,
                                       amount_minor bigint, currency_code text, posted_at timestamptz)",
        "raw_transaction",
        &transaction_text,
        transaction_rows.len(),
    )
    .await;

    let Service { env, pool, mut client, stop, handle } = start_service().await;
    let product = |code: &str, class: pb::AssetClass, family: &str| pb::Product {
        product_code: code.into(),
        name: code.into(),
        asset_class: class as i32,
        risk_level: 1,
        aum_weight_bp: 10_000,
        family: family.into(),
    };
    let products = vec![
        product("DEP", pb::AssetClass::Deposit, ""),
        product("WM", pb::AssetClass::WealthManagement, ""),
        product("CARD", pb::AssetClass::Settlement, "cards"),
        product("FUND", pb::AssetClass::WealthManagement, "funds"),
    ];
    client.upsert_products(pb::UpsertProductsRequest { products }).await.expect("products");
    // The customers, as CustomerCreated events would leave them.
    sqlx::query(
        "INSERT INTO customer (customer_number) SELECT lpad((100000000000 + g)::text, 12, '0') FROM generate_series(0, $1 - 1) g",
    )
    .bind(customers as i64)
    .execute(&pool)
    .await
    .expect("customers");

    let (load, loaded) = stream_rate(&client, &balance_rows, |b| b.account_id.as_str(), load_call).await;
    let load_settle = settle(&pool).await;
    let (record, recorded) = stream_rate(&client, &transaction_rows, |t| t.account_id.as_str(), record_call).await;
    let record_settle = settle(&pool).await;
    println!(
        "| {customers} | balances: {} rows | {copy_balances:.0} rows/s | {load:.0} rows/s ({:.1} %) | {:.1} s ({:.0} customers/s) | {loaded} accepted |",
        balance_rows.len(),
        100.0 * load / copy_balances,
        load_settle.as_secs_f64(),
        customers as f64 / load_settle.as_secs_f64(),
    );
    println!(
        "| {customers} | transactions: {} rows | {copy_transactions:.0} rows/s | {record:.0} rows/s ({:.1} %) | {:.1} s | {recorded} accepted |",
        transaction_rows.len(),
        100.0 * record / copy_transactions,
        record_settle.as_secs_f64(),
    );

    // Full re-rating.
    let start = Instant::now();
    let mut close =
        client.close_month(pb::CloseMonthRequest { month: "2026-01".into() }).await.expect("close").into_inner();
    while close.message().await.expect("close step").is_some() {}
    let close_time = start.elapsed();
    let start = Instant::now();
    let mut all = client.recompute_all(pb::RecomputeAllRequest {}).await.expect("recompute").into_inner();
    while all.message().await.expect("recompute step").is_some() {}
    let recompute_time = start.elapsed();
    settle(&pool).await;
    let start = Instant::now();
    let mut rescore_tx = pool.begin().await.expect("tx");
    analytics::store::valuation::rescore_rfm(&mut rescore_tx).await.expect("rescore");
    rescore_tx.rollback().await.expect("rollback");
    let rescore_time = start.elapsed();

    let service_months: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT customer_number, deposit, wealth_management FROM customer_month_value WHERE month = '2026-01'",
    )
    .fetch_all(&pool)
    .await
    .expect("months");
    let service_rfm: Vec<(String, i16, i16, i16)> =
        sqlx::query_as("SELECT customer_number, r, f, m FROM customer_rfm WHERE family = ''")
            .fetch_all(&pool)
            .await
            .expect("rfm");
    let baseline = match duckdb(&balance_text, &transaction_text) {
        Some(d) => {
            let mut differences = 0usize;
            let mut compared = 0usize;
            for (n, deposit, wealth) in &service_months {
                for (class, amount) in [("deposit", deposit), ("wealth_management", wealth)] {
                    compared += 1;
                    if d.month_aum.get(&(n.clone(), class.to_string())) != Some(amount) {
                        differences += 1;
                    }
                }
            }
            differences += d.month_aum.len().saturating_sub(compared);
            let mut rfm_differences = d.rfm.len().abs_diff(service_rfm.len());
            for (n, r, f, m) in &service_rfm {
                let code = i32::from(*r) * 100 + i32::from(*f) * 10 + i32::from(*m);
                if d.rfm.get(n) != Some(&code) {
                    rfm_differences += 1;
                }
            }
            format!(
                "{:.2} s; AUM {} (customer, class) figures, {differences} differ; RFM {} codes, {rfm_differences} differ",
                d.seconds,
                d.month_aum.len(),
                d.rfm.len()
            )
        }
        None => "not run (pip install duckdb)".into(),
    };
    println!(
        "| {customers} | re-rating | CloseMonth {:.1} s | RecomputeAll {:.1} s ({:.0} customers/s) | RFM rescore alone {:.2} s | DuckDB AUM + RFM: {baseline} |",
        close_time.as_secs_f64(),
        recompute_time.as_secs_f64(),
        customers as f64 / recompute_time.as_secs_f64(),
        rescore_time.as_secs_f64(),
    );

    // Incremental: balances at a steady rate, latency to revalued.
    let rate: usize = std::env::var("CRM_BENCH_RATE").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000);
    let seconds: u64 = std::env::var("CRM_BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let tick = Duration::from_millis(100);
    let per_tick = (rate / 10).max(1);
    let mut rng = Lcg(7);
    let mut batches: Vec<(time::OffsetDateTime, Instant)> = Vec::new();
    let began = Instant::now();
    let mut sent = 0usize;
    let mut interval = tokio::time::interval(tick);
    let monitor_pool = pool.clone();
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(false);
    // (poll instant, oldest due_since or None when nothing is due)
    let monitor = tokio::spawn(async move {
        let mut seen: Vec<(Instant, Option<time::OffsetDateTime>)> = Vec::new();
        loop {
            let oldest: Option<time::OffsetDateTime> = sqlx::query_scalar("SELECT min(due_since) FROM revaluation_due")
                .fetch_one(&monitor_pool)
                .await
                .expect("poll");
            seen.push((Instant::now(), oldest));
            if *done_rx.borrow() && oldest.is_none() {
                return seen;
            }
            tokio::select! {
                _ = done_rx.changed() => {}
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    });
    while began.elapsed() < Duration::from_secs(seconds) {
        interval.tick().await;
        let day = 1 + (sent / customers.max(1)) as i32 % 28;
        let requests: Vec<pb::LoadBalancesRequest> = (0..per_tick)
            .map(|_| {
                let c = rng.below(customers as u64) as usize;
                pb::LoadBalancesRequest {
                    snapshot: Some(pb::BalanceSnapshot {
                        account_id: format!("S{c:08}"),
                        customer: by_number(c),
                        product_code: "DEP".into(),
                        balance: Some(common::Money {
                            amount_minor: rng.below(100_000_000) as i64 * 100,
                            currency_code: "CNY".into(),
                        }),
                        balance_date: Some(common::Date { year: 2026, month: 2, day }),
                    }),
                }
            })
            .collect();
        sent += requests.len();
        client.load_balances(tokio_stream::iter(requests)).await.expect("incremental load");
        let accepted: time::OffsetDateTime =
            sqlx::query_scalar("SELECT clock_timestamp()").fetch_one(&pool).await.expect("now");
        batches.push((accepted, Instant::now()));
    }
    let achieved = sent as f64 / began.elapsed().as_secs_f64();
    let _ = done_tx.send(true);
    let seen = monitor.await.expect("monitor");
    let mut latencies: Vec<Duration> = batches
        .iter()
        .map(|(accepted, at)| {
            seen.iter()
                .find(|(polled, oldest)| *polled >= *at && oldest.is_none_or(|o| o > *accepted))
                .map_or(Duration::MAX, |(polled, _)| polled.duration_since(*at))
        })
        .collect();
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "| {customers} | incremental | {achieved:.0} balances/s for {seconds} s | accepted → revalued p50 {:.2} s, p99 {:.2} s, max {:.2} s | |",
        pick(0.5).as_secs_f64(),
        pick(0.99).as_secs_f64(),
        pick(1.0).as_secs_f64()
    );

    // Segment snapshot of every customer.
    client
        .define_segment(pb::DefineSegmentRequest {
            segment: Some(pb::Segment {
                code: "everyone".into(),
                name: "everyone".into(),
                condition: "aum.total >= 0 or aum.total < 0".into(),
                version: 0,
            }),
        })
        .await
        .expect("segment");
    let start = Instant::now();
    let evaluated = client
        .evaluate_segment(pb::EvaluateSegmentRequest { segment_code: "everyone".into(), ..Default::default() })
        .await
        .expect("evaluate")
        .into_inner();
    let evaluate_time = start.elapsed();
    let start = Instant::now();
    let mut pages = client
        .stream_segment_snapshot(pb::StreamSegmentSnapshotRequest { snapshot_id: evaluated.snapshot_id })
        .await
        .expect("stream")
        .into_inner();
    let mut streamed = 0usize;
    while let Some(page) = pages.message().await.expect("page") {
        streamed += page.customer_numbers.len();
    }
    let stream_time = start.elapsed();
    println!(
        "| {customers} | segment | evaluated {} members in {:.2} s | streamed {streamed} numbers at {:.0}/s | |",
        evaluated.member_count,
        evaluate_time.as_secs_f64(),
        streamed as f64 / stream_time.as_secs_f64()
    );
    let _ = std::io::stdout().flush();
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
    let per_customer: usize = std::env::var("CRM_BENCH_TXNS").ok().and_then(|d| d.parse().ok()).unwrap_or(20);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    println!("| customers | what | baseline | service | catch-up / detail | outcome |");
    println!("|---|---|---|---|---|---|");
    for customers in sizes {
        runtime.block_on(run(customers, per_customer));
    }
}
