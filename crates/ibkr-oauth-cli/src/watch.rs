//! Watches a [`TokenSource`] for new tokens, for the delivery paths that push the token out
//! (sink files, `exec`'s child) rather than wait to be asked.
//!
//! The source refreshes on its own (the provider's refresher starts before expiry: the refresh
//! margin, 5 minutes or a fifth of the lifetime); the watcher only looks at it, which costs an
//! atomic load on a provider's hit path. It looks every twentieth of the token's lifetime,
//! between 100 ms and 30 s, so that a new token is passed on well inside the refresh margin.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ibkr_oauth::{ExposeSecret as _, Token, TokenSource};

/// What the watcher saw.
#[derive(Debug)]
pub enum Event<'a> {
    /// A token unlike the last one (the first one too); `recovered` when the source failed
    /// before it.
    New {
        /// The token.
        token: &'a Arc<Token>,
        /// Whether the source was failing until now.
        recovered: bool,
    },
    /// The source has no token to give (reported once per run of failures).
    Failed(&'a ibkr_oauth::Error),
}

/// How long the watcher waits between looks while failing.
const RETRY: Duration = Duration::from_secs(1);

/// Watches `source` until dropped, calling `on_event` for each [`Event`].
pub async fn watch(source: Arc<dyn TokenSource>, mut on_event: impl FnMut(Event<'_>) + Send) {
    let mut last: Option<Arc<Token>> = None;
    let mut failing = false;
    loop {
        match source.access_token().await {
            Ok(token) => {
                if last.as_ref().is_none_or(|l| !same(l, &token)) {
                    on_event(Event::New {
                        token: &token,
                        recovered: failing,
                    });
                    last = Some(Arc::clone(&token));
                }
                failing = false;
                tokio::time::sleep(interval(&token)).await;
            }
            Err(error) => {
                if !failing {
                    on_event(Event::Failed(&error));
                }
                failing = true;
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// Whether `a` and `b` are the same token (the provider hands out copies of one token).
pub fn same(a: &Token, b: &Token) -> bool {
    a.access_token().expose_secret() == b.access_token().expose_secret()
        && a.expires_at() == b.expires_at()
}

/// A twentieth of the token's lifetime, between 100 ms and 30 s; 100 ms once it has expired.
fn interval(token: &Token) -> Duration {
    let lifetime = token
        .expires_at()
        .duration_since(token.received_at())
        .unwrap_or_default();
    let left = token
        .expires_at()
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    (lifetime / 20)
        .min(left)
        .clamp(Duration::from_millis(100), Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use ibkr_oauth::SecretString;

    /// Hands out the tokens of a list in turn, one per call, the last one forever.
    #[derive(Debug)]
    struct Turns(Mutex<Vec<Result<&'static str, ()>>>);

    #[async_trait::async_trait]
    impl TokenSource for Turns {
        async fn access_token(&self) -> Result<Arc<Token>, ibkr_oauth::Error> {
            let mut turns = self.0.lock().expect("lock");
            let turn = if turns.len() > 1 {
                turns.remove(0)
            } else {
                turns[0]
            };
            match turn {
                Ok(value) => Ok(Arc::new(
                    Token::builder(SecretString::from(value))
                        .expires_in(Duration::from_secs(2))
                        .received_at(SystemTime::UNIX_EPOCH)
                        .build()?,
                )),
                Err(()) => Err(ibkr_oauth::Error::custom(
                    ibkr_oauth::ErrorKind::Transport,
                    "connection refused",
                    None,
                )),
            }
        }

        async fn invalidate(&self, _: &Token) -> bool {
            false
        }
    }

    #[tokio::test(start_paused = true)]
    async fn reports_each_new_token_once_and_each_run_of_failures_once() {
        let source = Arc::new(Turns(Mutex::new(vec![
            Err(()),
            Err(()),
            Ok("a"),
            Ok("a"),
            Err(()),
            Ok("b"),
        ])));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let task = tokio::spawn(watch(source, move |event| {
            let entry = match event {
                Event::New { token, recovered } => {
                    format!("new {} {recovered}", token.access_token().expose_secret())
                }
                Event::Failed(_) => "failed".to_owned(),
            };
            log.lock().expect("lock").push(entry);
        }));
        tokio::time::sleep(Duration::from_secs(60)).await;
        task.abort();
        assert_eq!(
            *seen.lock().expect("lock"),
            ["failed", "new a true", "failed", "new b true"]
        );
    }
}
