//! `https` on the CP-compatible listener (`serve --gateway --cp-tls`): programs written for
//! IBKR's gateway expect `https://localhost:5000`. Either a certificate for `localhost`,
//! `127.0.0.1` and `::1` issued at start by a CA made for it (the CA's key is dropped as soon
//! as it has signed, so the CA the client trusts can sign nothing else), or the user's own
//! certificate and key.

use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;
use zeroize::Zeroizing;

use crate::error::Error;

/// PEM files larger than this are refused (a chain is a few KiB).
const MAX_PEM_BYTES: u64 = 256 * 1024;

/// What the CP-compatible listener serves `https` with.
#[derive(Clone)]
pub struct CpTls {
    acceptor: TlsAcceptor,
    ca_pem: Option<String>,
}

impl std::fmt::Debug for CpTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpTls")
            .field("generated", &self.ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<TlsAcceptor, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    // The routes speak HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

impl CpTls {
    /// A CA and a server certificate for `localhost`, `127.0.0.1` and `::1`, made now.
    ///
    /// # Errors
    /// [`Error::Internal`] when the crypto backend fails.
    pub fn generate() -> Result<Self, Error> {
        let failed = |e: &dyn std::fmt::Display| {
            Error::Internal(format!(
                "could not make the gateway's TLS certificate ({e})"
            ))
        };
        let ca_key = KeyPair::generate().map_err(|e| failed(&e))?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(|e| failed(&e))?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ibkr-oauth gateway CA (this run only)");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(|e| failed(&e))?;
        let issuer = Issuer::new(ca_params, ca_key);

        let names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        let mut params = CertificateParams::new(names).map_err(|e| failed(&e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "ibkr-oauth gateway");
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().map_err(|e| failed(&e))?;
        let cert = params.signed_by(&key, &issuer).map_err(|e| failed(&e))?;
        // The CA's key goes now: it has signed the one certificate it ever will.
        drop(issuer);

        let chain = vec![
            cert.der().clone(),
            CertificateDer::from(ca_cert.der().to_vec()),
        ];
        let der = Zeroizing::new(key.serialize_der());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.to_vec()));
        let acceptor = server_config(chain, key).map_err(|e| failed(&e))?;
        Ok(Self {
            acceptor,
            ca_pem: Some(ca_cert.pem()),
        })
    }

    /// The certificate chain in `cert` and its private key in `key` (PEM files).
    ///
    /// # Errors
    /// [`Error::Config`] naming the file that cannot be read, holds no certificate or key, or
    /// does not match.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, Error> {
        let cert_pem = read_pem(cert)?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                Error::Config(format!(
                    "--cp-tls-cert {}: not a PEM certificate chain ({e})",
                    cert.display()
                ))
            })?;
        if chain.is_empty() {
            return Err(Error::Config(format!(
                "--cp-tls-cert {}: no certificate in it; give the server certificate (and its \
                 chain) in PEM",
                cert.display()
            )));
        }
        let key_pem = read_pem(key)?;
        let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
            Error::Config(format!(
                "--cp-tls-key {}: no PEM private key (PKCS#8, SEC1 or PKCS#1) in it",
                key.display()
            ))
        })?;
        let acceptor = server_config(chain, private).map_err(|e| {
            Error::Config(format!(
                "--cp-tls-cert and --cp-tls-key cannot serve together ({e}); give the key of \
                 that certificate"
            ))
        })?;
        Ok(Self {
            acceptor,
            ca_pem: None,
        })
    }

    /// The handshake side of the listener.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// The generated CA's certificate (PEM, public), for clients to trust; `None` for the
    /// user's own certificate.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }
}

fn read_pem(path: &Path) -> Result<Zeroizing<Vec<u8>>, Error> {
    let unreadable =
        |e: std::io::Error| Error::Config(format!("could not read {} ({e})", path.display()));
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(Error::Config(format!(
            "{} is larger than {MAX_PEM_BYTES} bytes: not a PEM certificate or key",
            path.display()
        )));
    }
    Ok(bytes)
}

/// Writes the CA certificate to `path` (mode 0644: it is public), replacing what is there by
/// a rename, so that a link planted at `path` is replaced rather than followed.
///
/// # Errors
/// [`Error::Config`] naming the path.
pub fn write_ca(path: &Path, pem: &str) -> Result<(), Error> {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;
    let failed = |e: &dyn std::fmt::Display| {
        Error::Config(format!(
            "could not write the gateway's CA certificate to {} ({e}); choose another \
             --cp-tls-cert-out",
            path.display()
        ))
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| failed(&e))?;
    file.write_all(pem.as_bytes()).map_err(|e| failed(&e))?;
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(|e| failed(&e))?;
    file.persist(path).map_err(|e| failed(&e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_and_the_users_own() {
        let generated = CpTls::generate().unwrap();
        let pem = generated.ca_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ca.pem");
        write_ca(&out, pem).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), pem);

        // The user's own: a self-signed certificate and its key.
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (cert_path, key_path) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let own = CpTls::from_files(&cert_path, &key_path).unwrap();
        assert!(own.ca_pem().is_none());

        // Another key: refused, naming both flags.
        let other = dir.path().join("other.pem");
        std::fs::write(&other, KeyPair::generate().unwrap().serialize_pem()).unwrap();
        match CpTls::from_files(&cert_path, &other) {
            Err(Error::Config(message)) => assert!(message.contains("--cp-tls-key"), "{message}"),
            other => panic!("{other:?}"),
        }
        // A key where the certificate goes, and a missing file.
        assert!(matches!(
            CpTls::from_files(&key_path, &key_path),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            CpTls::from_files(&dir.path().join("none.pem"), &key_path),
            Err(Error::Config(_))
        ));
    }
}
