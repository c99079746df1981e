//! The jsonwebtoken crypto provider.
//!
//! jsonwebtoken picks its provider from its features and panics on first use when both
//! `rust_crypto` and `aws_lc_rs` end up enabled (feature unification in a bigger build). The
//! sandbox installs RustCrypto's provider when none is set, so it never hits that panic; a
//! provider the application installed first is kept.

use jsonwebtoken::crypto::CryptoProvider;

pub(crate) fn ensure_provider() {
    if CryptoProvider::try_get_default().is_none() {
        // Losing a race to another installer is fine: a provider is then set either way.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    }
}
