use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crm_platform::config::PlatformSettings;
use crm_platform::messaging::{Broker, ConsumerConfig, EventHandler, HandlerError, IncomingEvent, OutboxRelay};
use crm_platform::testing::TestEnv;
use crm_proto::crm::common::v1::Money;
use lapin::Channel;
use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use sqlx::PgPool;
use sqlx::migrate::Migrator;

pub static TEST_MIGRATOR: Migrator = sqlx::migrate!("./tests/migrations");

/// A fresh database with the kit's tables and the test ledger, plus a broker handle on
/// the test's own exchange.
pub struct Kit {
    pub env: TestEnv,
    pub settings: PlatformSettings,
    pub pool: PgPool,
    pub broker: Broker,
}

impl Kit {
    pub async fn new() -> Self {
        Self::with(&[]).await
    }

    pub async fn with(extra: &[(&str, &str)]) -> Self {
        let env = TestEnv::new("kit-test").await;
        // The kit's own tests run on quorum queues, the production default (other
        // tests' environments use classic ones, see `TestEnv::vars`).
        let mut vars = vec![("messaging.queue_type", "quorum")];
        vars.extend_from_slice(extra);
        let settings = env.platform_settings(&vars);
        let pool = crm_platform::db::connect(&settings.database).await.expect("connect");
        crm_platform::db::migrate(&pool, &TEST_MIGRATOR).await.expect("migrate");
        let broker = Broker::new(&settings.messaging, "kit-test");
        Self { env, settings, pool, broker }
    }

    pub fn relay(&self) -> OutboxRelay {
        OutboxRelay::new(
            self.pool.clone(),
            crm_platform::db::connect_options(&self.settings.database).expect("options"),
            self.broker.clone(),
            self.settings.messaging.relay_batch_size,
            Duration::from_millis(50),
        )
    }

    /// A queue bound to every event on the test exchange, to observe what is published.
    pub async fn probe(&self) -> (Channel, String) {
        let channel = self.broker.channel().await.expect("channel");
        let name = crm_platform::testing::unique("probe");
        channel
            .queue_declare(
                name.clone().into(),
                QueueDeclareOptions { auto_delete: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .expect("declare probe");
        channel
            .queue_bind(
                name.clone().into(),
                self.broker.exchange().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind probe");
        (channel, name)
    }

    /// Records a ledger movement and, in the same transaction, its event; commits or
    /// rolls back.
    pub async fn record_movement(&self, account: &str, amount: i64, commit: bool) {
        let mut tx = self.pool.begin().await.expect("begin");
        sqlx::query("INSERT INTO ledger (account, amount_minor) VALUES ($1, $2)")
            .bind(account)
            .bind(amount)
            .execute(&mut *tx)
            .await
            .expect("ledger");
        let event = Money { amount_minor: amount, currency_code: "CNY".into() };
        crm_platform::messaging::write_event(&mut tx, "crm/kit-test", account, &event, Some("u-1"))
            .await
            .expect("event written");
        if commit {
            tx.commit().await.expect("commit");
        } else {
            tx.rollback().await.expect("rollback");
        }
    }

    pub async fn applied_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM applied_events").fetch_one(&self.pool).await.expect("count")
    }

    pub fn consumer_config(&self, max_attempts: u32) -> ConsumerConfig {
        ConsumerConfig {
            name: format!("{}.ledger", self.env.exchange),
            bindings: vec!["crm.common.v1.#".into()],
            prefetch: 16,
            max_attempts,
            retry_backoff: Duration::from_millis(50),
        }
    }
}

/// Drains a queue, returning the messages it held.
pub async fn drain(channel: &Channel, queue: &str) -> Vec<lapin::message::BasicGetMessage> {
    let mut out = Vec::new();
    while let Some(m) = channel.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.expect("basic_get") {
        out.push(m);
    }
    out
}

/// Applies ledger events by inserting a row; fails for negative amounts, counting how
/// often it was called.
#[derive(Clone, Default)]
pub struct LedgerHandler {
    pub calls: Arc<AtomicU32>,
}

impl EventHandler for LedgerHandler {
    async fn handle(&self, event: &IncomingEvent, tx: &mut sqlx::PgConnection) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let money: Money = event.decode()?;
        if money.amount_minor < 0 {
            return Err(HandlerError::Transient("negative amounts are refused by this test handler".into()));
        }
        sqlx::query("INSERT INTO applied_events (message_id, subject, amount_minor) VALUES ($1, $2, $3)")
            .bind(&event.id)
            .bind(&event.subject)
            .bind(money.amount_minor)
            .execute(tx)
            .await?;
        Ok(())
    }
}

/// Collects messages from a queue until `n` have arrived or 10 s pass.
pub async fn collect(channel: &Channel, queue: &str, n: usize) -> Vec<lapin::message::BasicGetMessage> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut out = Vec::new();
    while out.len() < n && tokio::time::Instant::now() < deadline {
        out.extend(drain(channel, queue).await);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    out
}
