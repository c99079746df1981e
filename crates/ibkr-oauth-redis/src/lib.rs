//! A fleet-shared access token on Redis (docs to come).

#![deny(missing_docs)]

mod entry;
mod error;
mod key;
mod metrics;
mod shared;
mod source;
mod store;

pub use error::Error;
pub use key::{EncryptionKey, KEY_LEN};
pub use source::{
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_FAILURE_HOLD, DEFAULT_KEY_PREFIX, DEFAULT_LEASE_TTL,
    RedisTokenSource, RedisTokenSourceBuilder,
};
