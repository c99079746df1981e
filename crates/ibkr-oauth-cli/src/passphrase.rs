//! The passphrase of an encrypted private key: from `IBKR_PRIVATE_KEY_PASSPHRASE` (read by the
//! SDK's `Config`), or asked for on the terminal with echo off. Never a flag: a flag's value
//! lands in the shell's history and in `ps`.

use std::io::IsTerminal as _;

use ibkr_oauth::{SecretString, env_vars};

use crate::error::Error;

/// Asks for the passphrase of the encrypted key from `origin` when stdin is a terminal.
///
/// # Errors
/// [`Error::Config`] when stdin is not a terminal (saying which variable to set), or when the
/// terminal cannot be read.
pub fn ask(origin: &str) -> Result<SecretString, Error> {
    let not_given = || {
        format!(
            "the private key from {origin} is encrypted and no passphrase was given: set {} to \
             its passphrase, or run the command in a terminal to be asked for it",
            env_vars::PRIVATE_KEY_PASSPHRASE
        )
    };
    if !std::io::stdin().is_terminal() {
        return Err(Error::Config(not_given()));
    }
    // rpassword writes the prompt to the terminal, not to stdout, and reads with echo off.
    let passphrase = rpassword::prompt_password(format!("passphrase for the key from {origin}: "))
        .map_err(|e| Error::Config(format!("{}; reading the terminal failed: {e}", not_given())))?;
    Ok(SecretString::from(passphrase))
}
