//! The Redis side of the shared session: four keys per username, in one hash slot, and the
//! scripts that touch them, each bounded by the command timeout.
//!
//! | key | what |
//! |---|---|
//! | `<prefix>session:{<username>}:lease` | the owner's random holder id; expires after the lease TTL unless renewed |
//! | `<prefix>session:{<username>}:fence` | the fencing token: raised by each new owner above any it has seen; never expires |
//! | `<prefix>session:{<username>}:entry` | the sealed SSO token, written only by the current owner (fenced) |
//! | `<prefix>session:{<username>}:refused` | a follower's report that IBKR refused the token (its fingerprint) |

use std::time::Duration;

use crate::conn::{Conn, StoreResult};

/// Takes the lease if nobody holds it and raises the fencing token: 0 when taken by another,
/// else the new fencing token, above both the stored one and the highest this process has seen
/// (`ARGV[3]`): a Redis that restarted empty would otherwise count from 1 again, below the
/// fences the fleet knows.
const ACQUIRE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local stored = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
  local fence = math.max(stored, tonumber(ARGV[3]) or 0) + 1
  redis.call('SET', KEYS[2], string.format('%d', fence))
  return fence
end
return 0";

/// The owner's heartbeat: renews the lease and (re)writes the entry only while the lease holds
/// this holder and the fencing token is still this owner's; takes the refusal report too (read
/// and deleted in the script: a report written between a read and a separate delete would be
/// lost).
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('GET', KEYS[2]) ~= ARGV[3] then
  return {0, ''}
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
end
local refused = redis.call('GET', KEYS[4])
if refused then
  redis.call('DEL', KEYS[4])
end
return {1, refused or ''}";

/// Deletes the lease only if it still holds this holder's value.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// What the owner's heartbeat found.
pub(crate) enum Renewed {
    /// Still the owner; the follower's refusal report, if any (a fingerprint).
    Held(Option<Vec<u8>>),
    /// The lease or the fencing token is another's now.
    Lost,
}

pub(crate) struct SessionStore {
    conn: Conn,
    lease: String,
    fence: String,
    pub(crate) entry: String,
    refused: String,
    acquire: redis::Script,
    renew: redis::Script,
    release: redis::Script,
}

impl SessionStore {
    pub(crate) fn new(
        client: redis::Client,
        prefix: &str,
        username: &str,
        timeout: Duration,
    ) -> Self {
        // The braces make the four keys one hash slot (Redis Cluster runs the scripts then).
        let base = format!("{prefix}session:{{{username}}}");
        Self {
            conn: Conn::new(client, timeout),
            lease: format!("{base}:lease"),
            fence: format!("{base}:fence"),
            entry: format!("{base}:entry"),
            refused: format!("{base}:refused"),
            acquire: redis::Script::new(ACQUIRE),
            renew: redis::Script::new(RENEW),
            release: redis::Script::new(RELEASE),
        }
    }

    pub(crate) fn lease_key(&self) -> &str {
        &self.lease
    }

    /// Takes the lease if it is free: the new fencing token (above `seen`, the highest this
    /// process knows), or `None`.
    pub(crate) async fn acquire(
        &self,
        holder: &str,
        ttl: Duration,
        seen: u64,
    ) -> StoreResult<Option<u64>> {
        let ms = millis(ttl);
        let fence: u64 = self
            .conn
            .run(|mut c| async move {
                self.acquire
                    .key(&self.lease)
                    .key(&self.fence)
                    .arg(holder)
                    .arg(ms)
                    .arg(seen.to_string())
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok((fence > 0).then_some(fence))
    }

    /// The heartbeat: renews the lease for `ttl` and writes `entry` (if any) for `entry_ttl`,
    /// only while `holder` with `fence` owns it.
    pub(crate) async fn renew(
        &self,
        holder: &str,
        fence: u64,
        ttl: Duration,
        entry: Option<&[u8]>,
        entry_ttl: Duration,
    ) -> StoreResult<Renewed> {
        let (ms, entry_ms) = (millis(ttl), millis(entry_ttl));
        let (held, refused): (i64, Vec<u8>) = self
            .conn
            .run(|mut c| async move {
                self.renew
                    .key(&self.lease)
                    .key(&self.fence)
                    .key(&self.entry)
                    .key(&self.refused)
                    .arg(holder)
                    .arg(ms)
                    .arg(fence.to_string())
                    .arg(entry.unwrap_or_default())
                    .arg(entry_ms)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(if held == 1 {
            Renewed::Held((!refused.is_empty()).then_some(refused))
        } else {
            Renewed::Lost
        })
    }

    /// Releases the lease if `holder` still holds it (a clean stop: the next owner need not
    /// wait for it to expire).
    pub(crate) async fn release(&self, holder: &str) -> StoreResult<()> {
        let _: i64 = self
            .conn
            .run(|mut c| async move {
                self.release
                    .key(&self.lease)
                    .arg(holder)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(())
    }

    /// The sealed entry, if there is one.
    pub(crate) async fn read(&self) -> StoreResult<Option<Vec<u8>>> {
        self.conn
            .run(
                |mut c| async move { redis::cmd("GET").arg(&self.entry).query_async(&mut c).await },
            )
            .await
    }

    /// A follower's report that IBKR refused the token with this fingerprint.
    pub(crate) async fn report_refused(
        &self,
        fingerprint: &[u8],
        ttl: Duration,
    ) -> StoreResult<()> {
        let ms = millis(ttl);
        self.conn
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(&self.refused)
                    .arg(fingerprint)
                    .arg("PX")
                    .arg(ms)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }
}

/// Milliseconds for `PX`, at least 1.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
