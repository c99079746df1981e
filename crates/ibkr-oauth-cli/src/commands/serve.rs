//! `ibkr-oauth serve`: the local token agent ([`crate::agent`]) with a `TokenProvider` kept
//! fresh by its refresher, until Ctrl-C or SIGTERM.

use std::io::Write;
use std::sync::Arc;

use ibkr_oauth::provider::TokenProvider;
use ibkr_oauth::{SecretString, TokenSource};

use super::emit;
use super::sandbox::StopSignals;
use crate::agent::{Bound, Listen, default_socket_path, install_metrics, serve_with_metrics};
use crate::cli::ServeArgs;
use crate::config::Settings;
use crate::error::Error;

/// The variable that holds the secret of a loopback TCP agent.
pub const AGENT_SECRET_VAR: &str = "IBKR_AGENT_SECRET";

/// Serves tokens until a signal; prints where it listens first.
///
/// # Errors
/// Configuration errors before any I/O; [`Error::Agent`] when it cannot listen.
pub async fn run(args: &ServeArgs, out: &mut dyn Write) -> Result<(), Error> {
    // Where to listen first: a bad group or a missing secret stops it before any request.
    let listen = match args.listen {
        Some(addr) => Listen::Loopback {
            addr,
            secret: secret()?,
        },
        None => Listen::Unix {
            path: args.socket.clone().unwrap_or_else(default_socket_path),
            group: args.group.as_deref().map(gid).transpose()?,
        },
    };
    let mut settings = Settings::new(&args.signer, Some(&args.request))?;
    let client = settings.client()?;
    let signer = settings.signer()?;
    // One process's provider, or the fleet's shared source in front of Redis.
    let (source, refresher): (Arc<dyn TokenSource>, _) = match &args.redis.redis {
        Some(url) => {
            let shared = crate::redis::source(url, client, signer, settings.scope())?;
            let refresher = shared.spawn_refresher()?;
            (shared, refresher)
        }
        None => {
            let mut builder = TokenProvider::builder(client, signer);
            if let Some(scope) = settings.scope() {
                builder = builder.scope(scope);
            }
            let provider = builder.build()?;
            let refresher = provider.spawn_refresher()?;
            (Arc::new(provider), refresher)
        }
    };
    let stop = StopSignals::listen()?;
    let bound = Bound::bind(listen).await?;
    // Keeps the token fresh even when no client asks; stops with the command.
    let _refresher = refresher;
    emit(
        out,
        &format!(
            "ibkr-oauth serve: handing out tokens on {} (Ctrl-C to stop)\n",
            bound.describe()
        ),
    )?;
    let metrics = if args.metrics {
        Some(install_metrics()?)
    } else {
        None
    };
    serve_with_metrics(source, bound, metrics, stop.wait()).await?;
    emit(out, "ibkr-oauth serve: stopped\n")
}

fn secret() -> Result<SecretString, Error> {
    match std::env::var(AGENT_SECRET_VAR) {
        Ok(value) if !value.trim().is_empty() => Ok(SecretString::from(value)),
        _ => Err(Error::Agent(format!(
            "--listen needs a shared secret in {AGENT_SECRET_VAR} (e.g. `export \
             {AGENT_SECRET_VAR}=$(openssl rand -hex 32)`); clients send it in the \
             x-ibkr-agent-secret header"
        ))),
    }
}

/// A group's id from its number or its name, either of which must be in /etc/group: chown
/// takes 4294967295 as "leave the group", so an unknown group would silently fall back to the
/// user's own.
fn gid(group: &str) -> Result<u32, Error> {
    let number = group.parse::<u32>().ok();
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    groups
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let id = fields.nth(1)?.parse::<u32>().ok()?;
            (name == group || number == Some(id)).then_some(id)
        })
        .find(|id| *id != u32::MAX)
        .ok_or_else(|| {
            Error::Agent(format!(
                "no group {} {:?} in /etc/group; give the name or number of an existing group",
                if number.is_some() {
                    "numbered"
                } else {
                    "named"
                },
                ibkr_oauth::sanitize(group, 64)
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_number_and_name() {
        assert_eq!(gid("0").unwrap(), 0);
        assert_eq!(gid("root").unwrap(), 0);
        assert!(matches!(gid("no-such-group-here"), Err(Error::Agent(_))));
        // Issue 20: a number no group has (4294967295 is chown's "leave it") is refused.
        assert!(matches!(gid("4294967295"), Err(Error::Agent(_))));
        assert!(matches!(gid("4294967294"), Err(Error::Agent(_))));
    }
}
