//! The Redis side: two keys per cache (the sealed entry and the lease) and the few commands
//! that touch them, each bounded by the command timeout.

use std::time::Duration;

use crate::conn::Conn;
pub(crate) use crate::conn::{StoreError, StoreResult};
use crate::entry::{FINGERPRINT_AT, FINGERPRINT_LEN};

/// Deletes the lease only if it still holds this holder's value.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// Sets the lease's remaining time only if it still holds this holder's value.
const HOLD: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

/// An entry as read: its sealed value and how long Redis keeps it.
pub(crate) struct Read {
    pub(crate) value: Vec<u8>,
    pub(crate) ttl: Duration,
}

pub(crate) struct Store {
    conn: Conn,
    pub(crate) entry_key: String,
    lease_key: String,
    release: redis::Script,
    hold: redis::Script,
    invalidate: redis::Script,
}

impl Store {
    pub(crate) fn new(client: redis::Client, namespace: &str, timeout: Duration) -> Self {
        // Compares the fingerprint stored beside the ciphertext (1-based in Lua).
        let invalidate = format!(
            r"
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, {from}, {to}) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0",
            from = FINGERPRINT_AT + 1,
            to = FINGERPRINT_AT + FINGERPRINT_LEN,
        );
        Self {
            conn: Conn::new(client, timeout),
            entry_key: format!("{namespace}:token"),
            lease_key: format!("{namespace}:lease"),
            release: redis::Script::new(RELEASE),
            hold: redis::Script::new(HOLD),
            invalidate: redis::Script::new(&invalidate),
        }
    }

    pub(crate) fn lease_key(&self) -> &str {
        &self.lease_key
    }

    /// The entry and its remaining time, if there is one.
    pub(crate) async fn read(&self) -> StoreResult<Option<Read>> {
        let (value, ttl): (Option<Vec<u8>>, i64) = self
            .conn
            .run(|mut c| async move {
                redis::pipe()
                    .get(&self.entry_key)
                    .pttl(&self.entry_key)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        // PTTL: -2 no key (it expired between the two commands), -1 no expiry (not ours).
        Ok(match (value, u64::try_from(ttl)) {
            (Some(value), Ok(ms)) if ms > 0 => Some(Read {
                value,
                ttl: Duration::from_millis(ms),
            }),
            _ => None,
        })
    }

    /// Stores a sealed entry for `ttl`.
    pub(crate) async fn write(&self, value: &[u8], ttl: Duration) -> StoreResult<()> {
        let ms = millis(ttl);
        self.conn
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(&self.entry_key)
                    .arg(value)
                    .arg("PX")
                    .arg(ms)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }

    /// Takes the lease if nobody holds it.
    pub(crate) async fn try_lease(&self, holder: &str, ttl: Duration) -> StoreResult<bool> {
        let ms = millis(ttl);
        let reply: Option<String> = self
            .conn
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(&self.lease_key)
                    .arg(holder)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(reply.is_some())
    }

    /// Releases the lease if `holder` still holds it.
    pub(crate) async fn release(&self, holder: &str) -> StoreResult<bool> {
        let deleted: i64 = self
            .conn
            .run(|mut c| async move {
                self.release
                    .key(&self.lease_key)
                    .arg(holder)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(deleted == 1)
    }

    /// Keeps the lease for `ttl` more if `holder` still holds it (after a failed fetch: the
    /// fleet waits that long before the next attempt).
    pub(crate) async fn hold(&self, holder: &str, ttl: Duration) -> StoreResult<bool> {
        let ms = millis(ttl);
        let set: i64 = self
            .conn
            .run(|mut c| async move {
                self.hold
                    .key(&self.lease_key)
                    .arg(holder)
                    .arg(ms)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(set == 1)
    }

    /// Deletes the entry only if it holds the token with this fingerprint.
    pub(crate) async fn invalidate(&self, fingerprint: &[u8]) -> StoreResult<bool> {
        let deleted: i64 = self
            .conn
            .run(|mut c| async move {
                self.invalidate
                    .key(&self.entry_key)
                    .arg(fingerprint)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(deleted == 1)
    }
}

/// Milliseconds for `PX`, at least 1 (0 is an error in Redis).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
