//! `ibkr-oauth token`: one token request, one attempt, printed as a summary, JSON or raw.

use std::io::Write;

use ibkr_oauth::ExposeSecret;

use super::emit;
use crate::cli::TokenArgs;
use crate::config::Settings;
use crate::contract;
use crate::error::Error;
use crate::output::{self, LocalTime};

/// Fetches a token with the settings of `args` and prints it.
///
/// # Errors
/// Configuration errors before any I/O; the token request's error (a problem, a transport
/// failure, an invalid response) after.
pub async fn run(args: &TokenArgs, local: &LocalTime, out: &mut dyn Write) -> Result<(), Error> {
    let mut settings = Settings::new(&args.signer, Some(&args.request))?;
    let client = settings.client()?;
    let signer = settings.signer()?;
    let (client_id, key_id, token_url) = (
        signer.client_id().to_owned(),
        signer.key_id().to_owned(),
        client.token_url(),
    );
    let token = match &args.redis.redis {
        // The fleet's shared token: from Redis, or fetched once for everyone.
        Some(url) => {
            let source = crate::redis::source(url, client, signer, settings.scope())?;
            (*source
                .access_token()
                .await
                .map_err(|e| Error::request(e, &key_id))?)
            .clone()
        }
        None => {
            // Signed last, so that the assertion is as fresh as it can be when it leaves.
            let request = settings.request(&signer)?;
            client
                .request_token(&request)
                .await
                .map_err(|e| Error::request(e, &key_id))?
        }
    };
    let text = if args.raw {
        format!("{}\n", token.access_token().expose_secret())
    } else if args.json {
        format!("{:#}\n", contract::token_object(&token, args.reveal))
    } else {
        format!(
            "got an access token from {} (client {}, kid {})\n{}",
            token_url,
            client_id,
            key_id,
            output::token_summary(&token, args.reveal, local, "  ")
        )
    };
    emit(out, &text)
}
