//! `ibkr-oauth serve`: the local token agent ([`crate::agent`]) with a `TokenProvider` kept
//! fresh by its refresher, until Ctrl-C or SIGTERM.

use std::io::Write;
use std::sync::Arc;

use ibkr_oauth::provider::TokenProvider;
use ibkr_oauth::{SecretString, TokenSource};

use super::emit;

mod gateway;
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
    let mut settings = Settings::new(&args.signer, Some(&args.request))?;
    let client = settings.client()?;
    let signer = settings.signer()?;
    // The gateway opens SSO sessions: its token needs that scope.
    let scope = match settings.scope() {
        None if args.gateway.gateway => Some(ibkr_oauth::session::SSO_SESSIONS_SCOPE),
        scope => scope,
    };
    // One process's provider, or the fleet's shared source in front of Redis.
    let (source, refresher): (Arc<dyn TokenSource>, _) = match &args.redis.redis {
        Some(url) => {
            let shared = crate::redis::source(url, client, signer.clone(), scope)?;
            let refresher = shared.spawn_refresher()?;
            (shared, refresher)
        }
        None => {
            let mut builder = TokenProvider::builder(client, signer.clone());
            if let Some(scope) = scope {
                builder = builder.scope(scope);
            }
            let provider = builder.build()?;
            let refresher = provider.spawn_refresher()?;
            (Arc::new(provider), refresher)
        }
    };
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
    let stop = StopSignals::listen()?;
    let bound = Bound::bind(listen).await?;
    // Keeps the token fresh even when no client asks; stops with the command.
    let _refresher = refresher;
    let metrics = if args.metrics {
        Some(install_metrics()?)
    } else {
        None
    };
    if args.gateway.gateway {
        let gateway = gateway::start(args, &settings, signer, source, metrics).await?;
        gateway::serve(gateway, args, bound, stop, out).await?;
        return emit(out, "ibkr-oauth serve: stopped\n");
    }
    emit(
        out,
        &format!(
            "ibkr-oauth serve: handing out tokens on {} (Ctrl-C to stop)\n",
            bound.describe()
        ),
    )?;
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

/// A group's id from its number or its name (looked up in /etc/group).
fn gid(group: &str) -> Result<u32, Error> {
    if let Ok(id) = group.parse::<u32>() {
        return Ok(id);
    }
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    groups
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let id = fields.nth(1)?.parse::<u32>().ok()?;
            (name == group).then_some(id)
        })
        .next()
        .ok_or_else(|| {
            Error::Agent(format!(
                "no group named {:?} in /etc/group; give its name or number",
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
    }
}
