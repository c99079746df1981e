//! One IBKR access token for a whole fleet of processes, shared through Redis.
//!
//! IBKR's Web API allows about 50 requests per second per user (10 through the local
//! gateway); past that it answers 429 and may block the IP address for 10 minutes. A fleet
//! whose processes each fetch their own token sends one token request per process: 100
//! workers started together are 100 requests within a second. [`RedisTokenSource`] makes it
//! one request for the whole fleet, at start and at every refresh, and keeps the token in
//! Redis encrypted so that Redis, its replicas and its snapshots never hold a usable token.
//!
//! # Which to use when
//!
//! | deployment | use | token requests |
//! |---|---|---|
//! | one process | [`ibkr_oauth::provider::TokenProvider`] | one per process per token lifetime |
//! | one host, several programs or languages | a local token agent (one `TokenProvider` behind a local socket, `ibkr-oauth serve`) | one per host |
//! | many hosts | [`RedisTokenSource`] (this crate) | one per fleet |
//!
//! # Example
//!
//! ```no_run
//! use ibkr_oauth::provider::ClientFetch;
//! use ibkr_oauth::{ExposeSecret, PrivateKey, Signer, TokenClient, TokenRequest, TokenSource};
//! use ibkr_oauth_redis::{EncryptionKey, RedisTokenSource, TokenIdentity};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The usual IBKR settings: who signs, what to ask for.
//! let key = PrivateKey::from_pem_file("private.pem")?;
//! let signer = Signer::builder("my-client-id", "main", key).build()?;
//! let client = TokenClient::new()?;
//! // Everything that makes two tokens differ names the shared entry.
//! let identity = TokenIdentity::new(
//!     signer.client_id(),
//!     signer.key_id(),
//!     signer.audience(),
//!     client.base_url(),
//!     Some("sso-sessions.write"),
//! );
//! let request = TokenRequest::builder()
//!     .signer(signer)
//!     .scope("sso-sessions.write")
//!     .build()?;
//! let fetch = ClientFetch::new(client, request);
//!
//! // The fleet's settings: where Redis is, the entry's name, the shared key (32 random bytes
//! // in base64, e.g. `openssl rand -base64 32`, from your secret store).
//! let source = RedisTokenSource::builder(
//!     std::env::var("REDIS_URL")?, // rediss://user:password@cache.internal:6380
//!     identity.cache_name(),
//!     EncryptionKey::from_env("IBKR_TOKEN_CACHE_KEY")?,
//!     fetch,
//! )
//! .identity(identity)
//! .build()?;
//!
//! // Anywhere, any number of times: the cached token, no Redis command while it is valid.
//! let token = source.access_token().await?;
//! let authorization = format!("Bearer {}", token.access_token().expose_secret());
//! # let _ = authorization;
//!
//! // The API answered 401: report it; the fleet's entry is deleted if it still holds it.
//! source.invalidate(&token).await;
//!
//! // Or hand it on as any token source.
//! let shared: std::sync::Arc<dyn TokenSource> = std::sync::Arc::new(source);
//! # let _ = shared;
//! # Ok(())
//! # }
//! ```
//!
//! # How it works
//!
//! A [`TokenProvider`](ibkr_oauth::provider::TokenProvider) sits in front, so the hot read is
//! the provider's lock-free cached read: no Redis command, no lock. Only when the provider
//! needs a token (cold start, the refresh margin reached, expiry, a refused token) does it call
//! the shared fetch, which:
//!
//! 1. reads the entry (`GET` and `PTTL` in one round trip) and opens it. The lifetime left is
//!    the sealed expiry's, bounded by the lifetime IBKR granted (Redis's TTL, which anyone who
//!    can write to Redis sets, can only shorten it). An entry sealed for another client id or
//!    scope set ([`identity`](RedisTokenSourceBuilder::identity)) is not used: the process
//!    fetches alone. An entry issued before one this process has already seen (an old entry
//!    put back) counts as missing and is replaced. A fresh one (outside the refresh margin)
//!    is used: no IBKR request.
//! 2. Otherwise tries to take the lease: `SET <prefix><name>:lease <random> NX PX <lease_ttl>`.
//!    The holder reads the entry once more (another holder may just have stored one), asks
//!    IBKR through the inner fetch, renewing its lease every third of the TTL meanwhile, stores
//!    the sealed token with `PX` = the token's remaining lifetime, and releases the lease with
//!    a compare-and-delete script (only its own value).
//! 3. The others poll the entry with a growing, jittered pause (5 ms up to a tenth of the
//!    lease TTL) and take the token as soon as it is there. A holder that dies stops renewing
//!    its lease; it ends after `lease_ttl` and a waiter takes over.
//!
//! Refresh ahead is once for the fleet: an entry inside the refresh margin is due, only the
//! lease holder refreshes it, and the others keep their still-valid token meanwhile. A failed
//! request keeps the lease for [`failure_hold`](RedisTokenSourceBuilder::failure_hold), so a
//! failing IBKR gets one attempt per pause from the whole fleet; while the stored token is
//! still valid it is used.
//!
//! [`invalidate`](RedisTokenSource::invalidate) deletes the entry only if it still holds the
//! reported token: one script compares the fingerprint stored beside the ciphertext with the
//! reported token's, so a late report never deletes a newer token.
//!
//! **Redis unavailable** (down, unreachable, or slower than the
//! [command timeout](RedisTokenSourceBuilder::command_timeout), 500 ms by default): the process
//! fetches alone through the inner fetch, logs one `warn` per change of state and counts a
//! fallback, and shares again as soon as Redis answers. A Redis outage is never an outage of
//! tokens while IBKR answers.
//!
//! **An entry this process cannot open** (sealed under another key, or damaged): the process
//! warns, fetches alone and leaves the entry as it is, so a misconfigured process never
//! replaces a token the rest of the fleet can read. After a key rotation, processes with the
//! new key fetch alone until the old entry expires (or is deleted by hand).
//!
//! # One session per username for the fleet
//!
//! IBKR allows one brokerage session per username; two processes that each open one compete
//! for it. [`SharedSession`] elects one owner per username with a lease (the token lease's
//! design, plus a fencing token raised by each new owner): the owner opens the SSO and
//! brokerage session, tickles it, and publishes the SSO token sealed with the same
//! [`EncryptionKey`]; the others forward with it as their
//! [`SessionSource`](ibkr_oauth::session::SessionSource) and never open one. An owner that
//! dies or pauses is replaced within [`SharedSession::takeover_bound`] (the lease TTL and a
//! third of it, 13.3 s by default, plus one tickle), and the new owner adopts the published
//! session ([`Session::adopt`](ibkr_oauth::session::Session::adopt)) rather than opening a
//! competing one. When Redis does not answer for a lease TTL, [`SessionFallback`] decides:
//! fail closed ([`SharedSessionError::RedisUnavailable`], the default) or a session of each
//! host's own. `ibkr-oauth serve --gateway --redis` uses it.
//!
//! # Pacing for the fleet
//!
//! IBKR's pacing is per username, so a fleet must share one budget. [`RedisPacer`] is the
//! facade's [`Pacer`](ibkr_oauth::pacing::Pacer) for a fleet: the same GCRA as the in-process
//! [`Governor`](ibkr_oauth::pacing::Governor), as one Lua script that takes a turn from the
//! per-user limit and the endpoint's rule together, on Redis's clock. A 429 reported by any
//! process pauses that endpoint for all (the longest `Retry-After` wins). When Redis does not
//! answer it fails closed ([`PacingError::Unavailable`](ibkr_oauth::pacing::PacingError)) unless
//! [`WhenRedisDown::PaceAlone`] is chosen.
//!
//! # What is stored where
//!
//! | where | what |
//! |---|---|
//! | this process's memory | the token (in a `SecretString`), the derived keys |
//! | Redis `<prefix><name>:token` | format version, key id (derived one-way from the key), a fingerprint (HMAC-SHA256 of the token under a key derived from yours), a random nonce, and the AES-256-GCM ciphertext of the token, its type, scopes and lifetime, the client id and scope set asked for, its issue time and expiry, authenticated together with the key name; expires with the token |
//! | Redis `<prefix><name>:lease` | a random value naming the current fetcher; expires after the lease TTL |
//! | Redis `<prefix>session:{<username>}:lease` | [`SharedSession`]: the session owner's random holder id; expires after the lease TTL unless renewed |
//! | Redis `<prefix>session:{<username>}:fence` | the fencing token: raised by each new owner, never expires |
//! | Redis `<prefix>session:{<username>}:entry` | the SSO token, the username, the owner's fencing token and the session's state, sealed (AES-256-GCM, the key name authenticated); written only by the current owner (one script checks lease and fence); expires 15 min after the last heartbeat |
//! | Redis `<prefix>session:{<username>}:refused` | a follower's report that IBKR refused the token: its HMAC fingerprint, never the token |
//! | Redis `<prefix>pace:{<username>}:...` | [`RedisPacer`]: each limit's next turn (µs of Redis's clock), each paused endpoint; expire when they no longer matter |
//! | your secret store | the 32-byte [`EncryptionKey`]: never in Redis |
//!
//! Nothing in Redis lets anyone use the token without the key. Logs, `Debug` output and errors
//! never show the token, the key or the Redis password.
//!
//! # Redis
//!
//! Redis 6 or later, or Valkey. `redis://` or `rediss://` (TLS through rustls, with the
//! system's root certificates), user name and password from the URL. The commands used:
//! `GET`, `PTTL`, `SET` (with `NX`/`PX`), `DEL`, `EVALSHA`/`EVAL` (scripts that also run
//! `INCR` and `PEXPIRE`) and the connection's handshake: an ACL user needs those on
//! `<prefix>*` keys. Several clients or environments share one Redis under distinct [prefixes](RedisTokenSourceBuilder::key_prefix)
//! or cache names.
//!
//! # Observability
//!
//! Tracing: `warn` when Redis becomes unavailable and when it answers again, when an entry
//! cannot be opened, when a fleet refresh fails while the stored token is still valid;
//! `debug` for each step (took the fleet's token, waiting for the lease, holding it, stored).
//! With the feature `metrics`, counters and a gauge through the
//! [`metrics`](https://docs.rs/metrics) facade (install the recorder and exporter you use):
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `ibkr_oauth_redis_token_requests_total` | counter | `cache`, `mode` (`shared`, `alone`), `outcome` (`ok` or the error kind) | token requests this process sent to IBKR |
//! | `ibkr_oauth_redis_refreshes_ahead_total` | counter | `cache` | fleet refreshes before expiry made by this process |
//! | `ibkr_oauth_redis_lease_waits_total` | counter | `cache` | fetches that waited for another process's lease |
//! | `ibkr_oauth_redis_fallbacks_total` | counter | `cache`, `reason` (`redis_unavailable`, `other_key`, `other_request`, `unreadable_entry`, `lease_wait_limit`) | fetches made alone |
//! | `ibkr_oauth_redis_stale_served_total` | counter | `cache` | failed fleet refreshes answered with the stored, still valid token |
//! | `ibkr_oauth_redis_token_seconds_until_expiry` | gauge | `cache` | the lifetime left of the token last obtained |

#![deny(missing_docs)]

mod conn; // the connection and the command timeout
mod entry; // the sealed value stored in Redis
mod error; // what the builder refuses
mod identity; // what makes two tokens differ: the cache name and the sealed binding
mod key; // the fleet's key and the keys derived from it
mod metrics; // counters and gauges (feature `metrics`)
mod pacer; // IBKR's pacing for the fleet: GCRA as one Lua script
mod session; // one IBKR session per username for the fleet: owner lease, fencing, adoption
mod shared; // the fetch behind the provider: read, lease, fetch once, store
mod source; // RedisTokenSource and its builder
mod store; // the Redis commands and scripts, each within the timeout

pub use error::Error;
pub use identity::TokenIdentity;
pub use key::{EncryptionKey, KEY_LEN};
pub use pacer::{RedisPacer, RedisPacerBuilder, WhenRedisDown};
pub use session::{
    DEFAULT_SESSION_LEASE_TTL, SessionFallback, SessionRole, SharedSession, SharedSessionBuilder,
    SharedSessionError, SharedStatus,
};
pub use source::{
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_FAILURE_HOLD, DEFAULT_KEY_PREFIX, DEFAULT_LEASE_TTL,
    RedisTokenSource, RedisTokenSourceBuilder,
};
