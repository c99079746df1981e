//! One lazily made, auto-reconnecting connection to Redis, and every command on it bounded by
//! the command timeout (shared by the token store and the fleet's pacer).

use std::fmt;
use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

/// Why a Redis command gave no answer.
#[derive(Debug)]
pub(crate) enum StoreError {
    /// No answer within the command timeout.
    Timeout(Duration),
    /// Redis (or the way to it) failed.
    Redis(redis::RedisError),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Timeout(t) => write!(f, "Redis did not answer within {} ms", t.as_millis()),
            StoreError::Redis(e) => write!(f, "Redis: {e}"),
        }
    }
}

pub(crate) type StoreResult<T> = Result<T, StoreError>;

pub(crate) struct Conn {
    client: redis::Client,
    /// Made on first use, inside the runtime (the manager spawns a task).
    connection: OnceCell<ConnectionManager>,
    timeout: Duration,
}

impl Conn {
    pub(crate) fn new(client: redis::Client, timeout: Duration) -> Self {
        Self {
            client,
            connection: OnceCell::new(),
            timeout,
        }
    }

    /// Runs one operation on the shared connection, within the timeout.
    pub(crate) async fn run<T, F, Fut>(&self, op: F) -> StoreResult<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let work = async {
            let connection = self
                .connection
                .get_or_try_init(|| async {
                    let config = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(self.timeout))
                        .set_response_timeout(Some(self.timeout))
                        .set_number_of_retries(1)
                        .set_min_delay(Duration::from_millis(50))
                        .set_max_delay(self.timeout);
                    ConnectionManager::new_lazy_with_config(self.client.clone(), config)
                })
                .await?
                .clone();
            op(connection).await
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result.map_err(StoreError::Redis),
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        }
    }
}
