//! Outbox → RabbitMQ → consumer, measured against the real local PostgreSQL and
//! RabbitMQ, beside raw lapin publishing with publisher confirms in the same run.
//!
//! `cargo bench -p crm-platform --bench outbox_pipeline` prints a Markdown section for
//! `docs/benchmarks.md`. `CRM_BENCH_EVENTS` (default 20000) sets the event count.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crm_platform::messaging::envelope::OutgoingEvent;
use crm_platform::messaging::{
    Broker, Consumer, ConsumerConfig, EventHandler, HandlerError, IncomingEvent, OutboxRelay,
};
use crm_platform::testing::TestEnv;
use crm_proto::crm::common::v1::Money;
use hdrhistogram::Histogram;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./tests/migrations");

#[derive(Clone)]
struct Recorder {
    latencies: Arc<Mutex<Histogram<u64>>>,
    done: Arc<std::sync::atomic::AtomicU64>,
}

impl EventHandler for Recorder {
    async fn handle(&self, event: &IncomingEvent, tx: &mut sqlx::PgConnection) -> Result<(), HandlerError> {
        let money: Money = event.decode()?;
        sqlx::query("INSERT INTO applied_events (message_id, subject, amount_minor) VALUES ($1, $2, $3)")
            .bind(&event.id)
            .bind(&event.subject)
            .bind(money.amount_minor)
            .execute(tx)
            .await?;
        if let Some(t) = event.time {
            let micros = (OffsetDateTime::now_utc() - t).whole_microseconds().max(0) as u64;
            if let Ok(mut h) = self.latencies.lock() {
                let _ = h.record(micros);
            }
        }
        self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

fn event(i: i64) -> OutgoingEvent {
    OutgoingEvent {
        id: uuid::Uuid::now_v7(),
        event_type: "crm.common.v1.Money".into(),
        source: "crm/bench".into(),
        subject: format!("acct-{}", i % 64),
        payload: prost::Message::encode_to_vec(&Money { amount_minor: i, currency_code: "CNY".into() }),
        traceparent: None,
        tracestate: None,
        actor: None,
        time: OffsetDateTime::now_utc(),
    }
}

/// Raw lapin: publish to a durable queue with confirms, `window` messages in flight.
async fn raw_confirmed_publish(broker: &Broker, n: i64, window: i64) -> f64 {
    let channel = broker.confirm_channel().await.expect("channel");
    let queue = crm_platform::testing::unique("bench.raw");
    channel
        .queue_declare(
            queue.clone().into(),
            QueueDeclareOptions { durable: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .expect("declare");
    let start = Instant::now();
    let mut pending = Vec::new();
    for i in 0..n {
        let e = event(i);
        pending.push(
            channel
                .basic_publish(
                    "".into(),
                    queue.clone().into(),
                    BasicPublishOptions::default(),
                    &e.payload,
                    e.properties(),
                )
                .await
                .expect("publish"),
        );
        if pending.len() as i64 >= window {
            for c in pending.drain(..) {
                assert!(c.await.expect("confirm").is_ack());
            }
        }
    }
    for c in pending.drain(..) {
        assert!(c.await.expect("confirm").is_ack());
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let _ = channel.queue_delete(queue.into(), QueueDeleteOptions::default()).await;
    rate
}

struct Pipeline {
    env: TestEnv,
    pool: sqlx::PgPool,
    recorder: Recorder,
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    idle: Option<(OutboxRelay, Consumer<Recorder>)>,
}

impl Pipeline {
    fn start(&mut self) {
        if let Some((relay, consumer)) = self.idle.take() {
            self.tasks.push(tokio::spawn(relay.run(self.cancel.clone())));
            self.tasks.push(tokio::spawn(consumer.run(self.cancel.clone())));
        }
    }
}

async fn pipeline() -> Pipeline {
    let env = TestEnv::new("bench").await;
    let settings = env.platform_settings(&[("database.max_connections", "16"), ("messaging.prefetch", "256")]);
    let pool = crm_platform::db::connect(&settings.database).await.expect("pool");
    crm_platform::db::migrate(&pool, &MIGRATOR).await.expect("migrate");
    let broker = Broker::new(&settings.messaging, "bench");
    let recorder = Recorder {
        latencies: Arc::new(Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram"))),
        done: Arc::default(),
    };
    let consumer = Consumer::new(
        pool.clone(),
        broker.clone(),
        ConsumerConfig {
            name: format!("{}.bench", env.exchange),
            bindings: vec!["#".into()],
            prefetch: settings.messaging.prefetch,
            max_attempts: 3,
            retry_backoff: Duration::from_millis(100),
        },
        recorder.clone(),
    );
    consumer.declare(&broker.channel().await.expect("channel")).await.expect("declare");
    let relay = OutboxRelay::new(
        pool.clone(),
        crm_platform::db::connect_options(&settings.database).expect("options"),
        broker.clone(),
        settings.messaging.relay_batch_size,
        Duration::from_millis(settings.messaging.relay_poll_ms),
    );
    Pipeline { env, pool, recorder, cancel: CancellationToken::new(), tasks: vec![], idle: Some((relay, consumer)) }
}

async fn write_event(pool: &sqlx::PgPool, i: i64) {
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("INSERT INTO ledger (account, amount_minor) VALUES ($1, $2)")
        .bind(format!("acct-{}", i % 64))
        .bind(i)
        .execute(&mut *tx)
        .await
        .expect("ledger");
    let money = Money { amount_minor: i, currency_code: "CNY".into() };
    crm_platform::messaging::write_event(&mut tx, "crm/bench", &format!("acct-{}", i % 64), &money, None)
        .await
        .expect("event written");
    tx.commit().await.expect("commit");
}

async fn wait_for(p: &Pipeline, n: u64) {
    while p.recorder.done.load(std::sync::atomic::Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn stop(p: Pipeline) {
    p.cancel.cancel();
    for t in p.tasks {
        let _ = t.await;
    }
    p.pool.close().await;
    p.env.drop_database().await;
}

/// Maximum rates: `writers` tasks commit state changes with their events as fast as
/// they can (the write side); then the relay and the consumer drain that backlog (the
/// pipeline itself: outbox → broker with confirms → consumer with inbox).
async fn throughput(n: i64, writers: i64) -> (f64, f64) {
    let mut p = pipeline().await;
    let start = Instant::now();
    let mut handles = Vec::new();
    for w in 0..writers {
        let pool = p.pool.clone();
        handles.push(tokio::spawn(async move {
            let mut i = w;
            while i < n {
                write_event(&pool, i).await;
                i += writers;
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
    let write_rate = n as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    p.start();
    wait_for(&p, n as u64).await;
    let drain_rate = n as f64 / start.elapsed().as_secs_f64();
    stop(p).await;
    (drain_rate, write_rate)
}

/// The two halves alone: the relay draining committed events into a durable queue
/// nobody consumes, then the consumer draining that queue.
async fn halves(n: i64, writers: i64) -> (f64, f64) {
    let mut p = pipeline().await;
    let mut handles = Vec::new();
    for w in 0..writers {
        let pool = p.pool.clone();
        handles.push(tokio::spawn(async move {
            let mut i = w;
            while i < n {
                write_event(&pool, i).await;
                i += writers;
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
    let Some((relay, consumer)) = p.idle.take() else { return (0.0, 0.0) };
    let start = Instant::now();
    let relay_task = tokio::spawn(relay.run(p.cancel.clone()));
    loop {
        let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM crm_kit.outbox WHERE published_at IS NULL")
            .fetch_one(&p.pool)
            .await
            .expect("count");
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let relay_rate = n as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    p.tasks.push(relay_task);
    p.tasks.push(tokio::spawn(consumer.run(p.cancel.clone())));
    wait_for(&p, n as u64).await;
    let consumer_rate = n as f64 / start.elapsed().as_secs_f64();
    stop(p).await;
    (relay_rate, consumer_rate)
}

/// Latency at a fixed rate.
async fn latency_at(rate: u64, seconds: u64) -> (f64, f64, f64, f64) {
    let mut p = pipeline().await;
    p.start();
    let n = rate * seconds;
    let interval = Duration::from_micros(1_000_000 / rate);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    for i in 0..n as i64 {
        ticker.tick().await;
        let pool = p.pool.clone();
        tokio::spawn(async move { write_event(&pool, i).await });
    }
    let offered = n as f64 / start.elapsed().as_secs_f64();
    wait_for(&p, n).await;
    let h = p.recorder.latencies.lock().expect("histogram").clone();
    stop(p).await;
    (
        offered,
        h.value_at_quantile(0.50) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0,
    )
}

fn main() {
    let n: i64 = std::env::var("CRM_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let env = TestEnv::new("bench").await;
        let broker = Broker::new(&env.platform_settings(&[]).messaging, "bench-raw");
        let raw_windowed = raw_confirmed_publish(&broker, n, 500).await;
        let raw_single = raw_confirmed_publish(&broker, n / 10, 1).await;
        broker.close().await;
        env.drop_database().await;
        // Latency first: it is the most sensitive to the checkpoints that the heavy
        // write phases below leave behind.
        let (offered, p50, p99, max) = latency_at(1000, 10).await;
        let (pipeline_rate, write_rate) = throughput(n, 8).await;
        let (relay_rate, consumer_rate) = halves(n, 8).await;
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
            .unwrap_or_default();
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
        println!("## Outbox → RabbitMQ → consumer (crm-platform)\n");
        println!("Machine: {cpu}, {cores} cores; PostgreSQL and RabbitMQ on the same machine. {n} events of ~20 bytes.\n");
        println!("| measurement | result |");
        println!("|---|---|");
        println!("| raw lapin publish, confirms, 500 in flight (baseline) | {raw_windowed:.0} msg/s |");
        println!("| raw lapin publish, confirm awaited per message | {raw_single:.0} msg/s |");
        println!("| outbox → relay (confirms) → consumer (inbox), draining {n} committed events | {pipeline_rate:.0} events/s ({:.0} % of baseline) |", 100.0 * pipeline_rate / raw_windowed);
        println!("| of which: relay alone (outbox → durable queue, confirms) | {relay_rate:.0} events/s |");
        println!("| of which: consumer alone (queue → inbox + handler, one commit per batch) | {consumer_rate:.0} events/s |");
        println!("| writing: state change + outbox row, one transaction each, 8 writers | {write_rate:.0} tx/s |");
        println!("| latency at {offered:.0} events/s offered: p50 / p99 / max | {p50:.1} ms / {p99:.1} ms / {max:.1} ms |");
    });
}
