//! ECIF load and read benchmark against the real local PostgreSQL and RabbitMQ.
//!
//! `CRM_BENCH_RECORDS=100000,1000000 cargo bench -p customer-profile --bench ecif_load`
//! For each size: PostgreSQL `COPY` of the same rows into an unindexed table (the floor
//! of the cost), bulk import through the gRPC stream, and the batch file load; then, on
//! the imported data, single upserts at 500/s and 360° views at 1,000/s. Prints a
//! Markdown section for `docs/benchmarks.md`.

use std::time::{Duration, Instant};

use crm_platform::auth::DataScope;
use crm_platform::grpc::client::BearerToken;
use crm_platform::testing::TestEnv;
use crm_proto::crm::customer::v1 as pb;
use customer_profile::{Application, Settings, file_load, sample};
use hdrhistogram::Histogram;
use sqlx::Connection;

const PII_KEY: &str = "8f2c0b5e3a7d41c69e0f1b2a3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f";
const STREAMS: usize = 4;

fn settings(env: &TestEnv) -> Settings {
    Settings::load_from(env.vars(&[
        ("customer.pii_key", PII_KEY),
        ("database.max_connections", "16"),
        // A stream of 2,000 records must not hit the default 10 s call timeout when the
        // machine is slow; the benchmark measures throughput, not the timeout.
        ("grpc.request_timeout_ms", "120000"),
        ("telemetry.log_filter", "error"),
    ]))
    .expect("settings")
}

async fn copy_rate(records: &[pb::SourceRecord]) -> f64 {
    let env = TestEnv::new("customer-profile").await;
    let mut conn = sqlx::PgConnection::connect(&env.database_url()).await.expect("connect");
    let columns = file_load::COLUMNS.iter().map(|c| format!("{c} text")).collect::<Vec<_>>().join(", ");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE TABLE raw_records ({columns})")))
        .execute(&mut conn)
        .await
        .expect("table");
    let mut data = String::new();
    for r in records {
        data.push_str(&file_load::to_line(r).replace('|', "\t"));
        data.push('\n');
    }
    let start = Instant::now();
    let mut copy = conn.copy_in_raw("COPY raw_records FROM STDIN").await.expect("copy");
    copy.send(data.into_bytes()).await.expect("send");
    copy.finish().await.expect("finish");
    let rate = records.len() as f64 / start.elapsed().as_secs_f64();
    let _ = conn.close().await;
    env.drop_database().await;
    rate
}

type Client = pb::customer_service_client::CustomerServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerToken>,
>;

struct Running {
    client: Client,
    pool: sqlx::PgPool,
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<Result<(), crm_platform::PlatformError>>,
}

async fn start(env: &TestEnv) -> Running {
    // The load runs as a source system would: with a token, through the auth layer.
    let tokens = crm_platform::testing::TestTokens::new();
    let app = Application::build_with_keys(settings(env), Some(tokens.key_source())).await.expect("build");
    let token = tokens.token("bench-source", &["customer.read", "customer.write"], DataScope::All, "/HO/");
    let (pool, port) = (app.pool(), app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let client = pb::customer_service_client::CustomerServiceClient::with_interceptor(
        channel,
        BearerToken::new(&token).expect("token"),
    );
    Running { client, pool, stop, handle }
}

async fn import_rate(run: &Running, records: &[pb::SourceRecord]) -> (f64, i64) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for part in records.chunks(records.len().div_ceil(STREAMS)) {
        let mut client = run.client.clone();
        let part: Vec<pb::ImportSourceRecordsRequest> =
            part.iter().map(|r| pb::ImportSourceRecordsRequest { record: Some(r.clone()) }).collect();
        tasks.push(tokio::spawn(async move {
            // A stream is one call, bounded by the server's request timeout: a large load
            // goes as several streams.
            let mut accepted = 0;
            for chunk in part.chunks(2_000) {
                accepted += client
                    .import_source_records(tokio_stream::iter(chunk.to_vec()))
                    .await
                    .expect("import")
                    .into_inner()
                    .accepted_count;
            }
            accepted
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await.expect("join");
    }
    (records.len() as f64 / start.elapsed().as_secs_f64(), accepted)
}

async fn file_rate(records: &[pb::SourceRecord]) -> f64 {
    let env = TestEnv::new("customer-profile").await;
    let s = settings(&env);
    let pool = crm_platform::db::connect(&s.platform.database).await.expect("pool");
    crm_platform::db::migrate(&pool, &customer_profile::MIGRATOR).await.expect("migrate");
    let path = std::env::temp_dir().join(format!("ecif-bench-{}.txt", std::process::id()));
    let mut text = file_load::header_line();
    text.push('\n');
    for r in records {
        text.push_str(&file_load::to_line(r));
        text.push('\n');
    }
    std::fs::write(&path, text).expect("write");
    let pii = s.service.pii_cipher().expect("key");
    let start = Instant::now();
    file_load::load_file(&pool, &s.service.trust_table(), &pii, &path, 2000, None).await.expect("load");
    let rate = records.len() as f64 / start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(path);
    pool.close().await;
    env.drop_database().await;
    rate
}

/// Calls at `rate` per second for `seconds`, returning p50/p99 in ms of the calls that
/// succeeded and how many failed (shed, timed out or refused: a run with failures does
/// not meet a latency target, whatever its percentiles).
async fn latency<F, Fut>(rate: u64, seconds: u64, call: F) -> (f64, f64, u64)
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let hist =
        std::sync::Arc::new(std::sync::Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("hist")));
    let failed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut tasks = Vec::new();
    for i in 0..rate * seconds {
        ticker.tick().await;
        let fut = call(i);
        let (hist, failed) = (hist.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            if fut.await {
                let _ = hist.lock().map(|mut h| h.record(t.elapsed().as_micros() as u64));
            } else {
                failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let h = hist.lock().expect("hist");
    (
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        failed.load(std::sync::atomic::Ordering::Relaxed),
    )
}

/// The offered-load phases: single upserts at 500/s, then 360° views at 1,000/s
/// (p50, p99, failed for each). `round` keeps a second run's calls distinct.
async fn offered_load(
    client: &Client,
    pool: &sqlx::PgPool,
    records: &[pb::SourceRecord],
    n: usize,
    round: u64,
    on: impl Fn(&str) -> bool,
) -> [(f64, f64, u64); 2] {
    let (u50, u99, ufail) = if on("upsert") {
        // Day-time traffic: half new customers from a channel (source keys never
        // seen), half edits of loaded records (a newer version with a new phone
        // and e-mail, same identity). Identity-changing edits are rare in real
        // traffic and take the one-by-one path; the identification tests cover them.
        let fresh: Vec<pb::SourceRecord> = sample::generate(7_000_000 + n as u64 + round * 10_000, 5000)
            .into_iter()
            .map(|mut r| {
                if let Some(k) = r.key.as_mut() {
                    k.source_customer_id = format!("LIVE{round}-{}", k.source_customer_id);
                }
                r
            })
            .collect();
        latency(rate("CRM_BENCH_UPSERT_RATE", 500), 10, |i| {
            let mut c = client.clone();
            let r = if i % 2 == 0 {
                fresh[(i as usize / 2) % fresh.len()].clone()
            } else {
                let mut r = records[(i as usize * 7919) % records.len()].clone();
                r.source_version += 1 + i as i64 + round as i64 * 1_000_000;
                r.mobile_phone = format!("139{:08}", i);
                r.email = format!("edit{i}@example.com");
                r
            };
            async move {
                // The generator's few broken rows are refused by validation, as they should be.
                match c.upsert_source_record(pb::UpsertSourceRecordRequest { record: Some(r) }).await {
                    Ok(_) => true,
                    Err(e) if e.code() == tonic::Code::InvalidArgument => true,
                    Err(e) => {
                        if i % 100 == 0 {
                            eprintln!("upsert failed: {e}");
                        }
                        false
                    }
                }
            }
        })
        .await
    } else {
        (f64::NAN, f64::NAN, 0)
    };
    let (v50, v99, vfail) = if on("view") {
        let numbers: Vec<String> = sqlx::query_scalar(
            "SELECT customer_number FROM party WHERE status = 'ACTIVE' ORDER BY random() LIMIT 10000",
        )
        .fetch_all(pool)
        .await
        .expect("numbers");
        latency(rate("CRM_BENCH_VIEW_RATE", 1000), 10, |i| {
            let mut c = client.clone();
            let number = numbers[(i as usize) % numbers.len()].clone();
            async move { c.get_customer360(pb::GetCustomer360Request { customer_number: number }).await.is_ok() }
        })
        .await
    } else {
        (f64::NAN, f64::NAN, 0)
    };
    [(u50, u99, ufail), (v50, v99, vfail)]
}

/// Waits until the relay has published every event the load wrote (bounded), so that
/// the latency phases measure the offered calls, not a backlog drained beside them.
async fn drained(pool: &sqlx::PgPool) -> f64 {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(600) {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM crm_kit.outbox").fetch_one(pool).await.expect("outbox");
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    start.elapsed().as_secs_f64()
}

/// Offered call rate of a latency phase: the target's rate unless overridden.
fn rate(var: &str, default: u64) -> u64 {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let sizes: Vec<usize> = std::env::var("CRM_BENCH_RECORDS")
        .unwrap_or_else(|_| "100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    // Which phases to run (all by default): copy, import, file, serial, upsert, view, settled.
    let phases =
        std::env::var("CRM_BENCH_PHASES").unwrap_or_else(|_| "copy,import,file,serial,upsert,view,settled".into());
    let on = |phase: &str| phases.split(',').any(|p| p.trim() == phase);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        println!("## ECIF load and reads (customer-profile)\n");
        println!("| records | COPY (floor) | bulk import (gRPC, {STREAMS} streams) | file load | relay drain after import | upsert p50 / p99 @500/s | 360° p50 / p99 @1000/s |");
        println!("|---|---|---|---|---|---|---|");
        for n in sizes {
            let records = sample::generate(42, n);
            let copy = if on("copy") { copy_rate(&records).await } else { f64::NAN };
            let file = if on("file") { file_rate(&records).await } else { f64::NAN };
            let env = TestEnv::new("customer-profile").await;
            let run = start(&env).await;
            let (import, accepted) = if on("import") || on("upsert") || on("view") || on("serial") {
                import_rate(&run, &records).await
            } else {
                (f64::NAN, 0)
            };
            let drain = drained(&run.pool).await;
            let client = run.client.clone();
            if on("serial") {
                // One call at a time: what a call costs when nothing queues.
                let fresh = sample::generate(9_000_000 + n as u64, 300);
                let (mut c, mut up, mut view) = (client.clone(), Vec::new(), Vec::new());
                for r in fresh {
                    let t = Instant::now();
                    let number = c
                        .upsert_source_record(pb::UpsertSourceRecordRequest { record: Some(r) })
                        .await
                        .map(|r| r.into_inner().customer_number)
                        .unwrap_or_else(|e| {
                            eprintln!("upsert failed: {e}");
                            String::new()
                        });
                    up.push(t.elapsed().as_secs_f64() * 1000.0);
                    let t = Instant::now();
                    let _ = c.get_customer360(pb::GetCustomer360Request { customer_number: number }).await;
                    view.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                let median = |v: &mut Vec<f64>| {
                    v.sort_by(f64::total_cmp);
                    v[v.len() / 2]
                };
                println!("serial medians: upsert {:.2} ms, 360 view {:.2} ms", median(&mut up), median(&mut view));
            }
            let [(u50, u99, ufail), (v50, v99, vfail)] = offered_load(&client, &run.pool, &records, n, 0, on).await;
            // The same offered load once the database has settled after the load: vacuum
            // and statistics done (autovacuum would get there on its own, while serving),
            // and a checkpoint taken.
            let settled = if on("settled") {
                for table in ["party", "source_record", "identity_group", "party_history", "suspect_pair", "crm_kit.audit_entry"] {
                    sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM (ANALYZE) {table}")))
                        .execute(&run.pool)
                        .await
                        .expect("vacuum");
                }
                sqlx::query("CHECKPOINT").execute(&run.pool).await.expect("checkpoint");
                Some(offered_load(&client, &run.pool, &records, n, 1, on).await)
            } else {
                None
            };
            let _ = run.stop.send(());
            let _ = run.handle.await;
            run.pool.close().await;
            env.drop_database().await;
            println!(
                "| {n} ({accepted} accepted) | {copy:.0} rows/s | {import:.0} records/s ({:.1} % of COPY) | {file:.0} records/s ({:.1} % of COPY) | {drain:.1} s | {u50:.1} / {u99:.1} ms ({ufail} failed) | {v50:.1} / {v99:.1} ms ({vfail} failed) |",
                100.0 * import / copy,
                100.0 * file / copy
            );
            if let Some([(u50, u99, ufail), (v50, v99, vfail)]) = settled {
                println!(
                    "| {n}, settled (vacuum, analyze, checkpoint) | | | | | {u50:.1} / {u99:.1} ms ({ufail} failed) | {v50:.1} / {v99:.1} ms ({vfail} failed) |"
                );
            }
        }
    });
}
