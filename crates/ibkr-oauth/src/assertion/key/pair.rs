//! What parsing yields: the aws-lc-rs key pair and the PEM format it came in. A leaf: the
//! other parts of `key` use it, it uses none of them.

use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};

/// The parsed key pair. Signing borrows it; nothing re-parses.
pub(crate) enum KeyPair {
    Rsa(RsaKeyPair),
    EcP256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// The format a PEM label announces.
#[derive(Clone, Copy)]
pub(crate) enum Format {
    Pkcs8,
    Pkcs1,
    Sec1,
    EncryptedPkcs8,
}

impl Format {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Pkcs8 => "PKCS#8 (BEGIN PRIVATE KEY)",
            Format::Pkcs1 => "PKCS#1 RSA (BEGIN RSA PRIVATE KEY)",
            Format::Sec1 => "SEC1 EC (BEGIN EC PRIVATE KEY)",
            Format::EncryptedPkcs8 => "encrypted PKCS#8 (BEGIN ENCRYPTED PRIVATE KEY)",
        }
    }
}
