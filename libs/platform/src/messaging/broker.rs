//! The AMQP connection of a service, the topic exchange, and the type of the queues its
//! consumers declare.

use std::sync::Arc;

use lapin::options::ExchangeDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use crate::config::{MessagingSettings, QueueType};
use crate::error::PlatformError;

/// A lazily (re)connected broker connection shared by the relay, the consumers and the
/// health check. Each user opens its own channel; when the connection drops, the next
/// [`Broker::channel`] call reconnects.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    url: SecretString,
    exchange: String,
    queue_type: QueueType,
    name: String,
    connection: Mutex<Option<Arc<Connection>>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("exchange", &self.inner.exchange)
            .field("queue_type", &self.inner.queue_type)
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// A broker handle; no connection is made until first use. `connection_name` is the
    /// service's name: it names the connection in the broker's management UI and the
    /// environment variables in configuration errors.
    pub fn new(settings: &MessagingSettings, connection_name: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                url: settings.url.clone(),
                exchange: settings.exchange.clone(),
                queue_type: settings.queue_type,
                name: connection_name.to_string(),
                connection: Mutex::new(None),
            }),
        }
    }

    /// The topic exchange events are published to.
    pub fn exchange(&self) -> &str {
        &self.inner.exchange
    }

    /// The type of the queues consumers declare (`messaging.queue_type`).
    pub fn queue_type(&self) -> QueueType {
        self.inner.queue_type
    }

    /// The environment variable that sets `key` for this service, for error messages.
    pub(crate) fn env_var_for(&self, key: &str) -> String {
        crate::config::env_var_for(&self.inner.name, key)
    }

    async fn connection(&self) -> Result<Arc<Connection>, PlatformError> {
        let mut guard = self.inner.connection.lock().await;
        if let Some(conn) = guard.as_ref()
            && conn.status().connected()
        {
            return Ok(conn.clone());
        }
        let props = ConnectionProperties::default().with_connection_name(self.inner.name.clone().into());
        let conn = Arc::new(Connection::connect(self.inner.url.expose_secret(), props).await?);
        let channel = conn.create_channel().await?;
        channel
            .exchange_declare(
                self.inner.exchange.clone().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions { durable: true, ..Default::default() },
                FieldTable::default(),
            )
            .await?;
        let _ = channel.close(200, "declared".into()).await;
        tracing::info!(exchange = %self.inner.exchange, "connected to broker");
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// A new channel, reconnecting first if the connection is gone.
    pub async fn channel(&self) -> Result<Channel, PlatformError> {
        let conn = self.connection().await?;
        match conn.create_channel().await {
            Ok(ch) => Ok(ch),
            Err(e) => {
                // The connection looked alive but is not: drop it so that the next call reconnects.
                *self.inner.connection.lock().await = None;
                Err(e.into())
            }
        }
    }

    /// A new channel in publisher-confirm mode.
    pub async fn confirm_channel(&self) -> Result<Channel, PlatformError> {
        let channel = self.channel().await?;
        channel.confirm_select(Default::default()).await?;
        Ok(channel)
    }

    /// Whether the broker is reachable now; tries to reconnect if it was not.
    pub async fn is_reachable(&self) -> bool {
        self.connection().await.is_ok()
    }

    /// Closes the connection (shutdown).
    pub async fn close(&self) {
        if let Some(conn) = self.inner.connection.lock().await.take() {
            let _ = conn.close(200, "shutdown".into()).await;
        }
    }
}
