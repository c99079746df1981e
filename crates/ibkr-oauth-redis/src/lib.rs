//! A fleet-shared access token on Redis (docs to come).

#![deny(missing_docs)]
// The modules below are wired into the token source in the next commit.
#![allow(dead_code)]

mod entry;
mod error;
mod key;
mod store;

pub use error::Error;
pub use key::{EncryptionKey, KEY_LEN};
