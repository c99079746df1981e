//! `ibkr-oauth keygen`: a new key pair as PEM files, the private one created with mode 0600,
//! and what to register with IBKR.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use ibkr_oauth::{Algorithm, PrivateKey};

use super::{describe_key, emit};
use crate::cli::{KeyFileArgs, KeygenArgs};
use crate::error::Error;
use crate::output::shell_assignment;

/// The private key file's name in the output directory.
pub const PRIVATE_KEY_FILE: &str = "private.pem";
/// The public key file's name in the output directory.
pub const PUBLIC_KEY_FILE: &str = "public.pem";

/// Where a key pair goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPaths {
    /// The private key (PKCS#8 PEM, mode 0600).
    pub private: PathBuf,
    /// The public key (SubjectPublicKeyInfo PEM).
    pub public: PathBuf,
}

impl KeyPaths {
    /// The files of `args`: explicit paths, else [`PRIVATE_KEY_FILE`] and [`PUBLIC_KEY_FILE`]
    /// in `--out`, else in `default_dir`.
    pub fn resolve(args: &KeyFileArgs, default_dir: &Path) -> Self {
        let dir = args.out.as_deref().unwrap_or(default_dir);
        Self {
            private: args
                .private_key_file
                .clone()
                .unwrap_or_else(|| dir.join(PRIVATE_KEY_FILE)),
            public: args
                .public_key_file
                .clone()
                .unwrap_or_else(|| dir.join(PUBLIC_KEY_FILE)),
        }
    }
}

/// Generates a key and writes the pair, then prints the public key and the settings.
///
/// # Errors
/// [`Error::FileExists`] without `--force`; [`Error::File`] when a file cannot be written.
pub fn run(args: &KeygenArgs, out: &mut dyn Write) -> Result<(), Error> {
    let paths = KeyPaths::resolve(&args.files, Path::new("."));
    // Refuse before generating: an RSA key takes a moment, and nothing is written half.
    check_free(&paths, args.files.force)?;
    let key = PrivateKey::generate(args.alg)?;
    write_key_pair(&key, &paths, args.files.force)?;
    let private = absolute(&paths.private);
    let public = absolute(&paths.public);
    let mut text = format!(
        "generated an {} key pair for {}\n  private key: {} (mode 0600: keep it secret, never \
         share it)\n  public key:  {}\n\nRegister this public key with IBKR under the key id \
         (kid) {:?}:\n{}\n\nThen configure the client:\n  export {}\n  export {}\n  export \
         IBKR_CLIENT_ID=...   # the client id IBKR gives you\n",
        describe_key(&key),
        args.alg,
        private.display(),
        public.display(),
        args.key_id,
        key.public_key_pem().trim_end(),
        shell_assignment("IBKR_KEY_ID", &args.key_id),
        shell_assignment("IBKR_PRIVATE_KEY", &private.to_string_lossy()),
    );
    if needs_alg_setting(args.alg) {
        text.push_str(&format!(
            "  export {}\n",
            shell_assignment("IBKR_ALG", args.alg.as_str())
        ));
    }
    emit(out, &text)
}

/// Fails with [`Error::FileExists`] if a file of the pair exists and `force` is off, and with
/// [`Error::Config`] if both paths are the same.
pub fn check_free(paths: &KeyPaths, force: bool) -> Result<(), Error> {
    if paths.private == paths.public {
        return Err(Error::Config(format!(
            "the private and the public key would both be written to {}; give two paths",
            paths.private.display()
        )));
    }
    if !force {
        for path in [&paths.private, &paths.public] {
            // symlink_metadata: a dangling link is still something not to overwrite.
            if fs::symlink_metadata(path).is_ok() {
                return Err(Error::FileExists { path: path.clone() });
            }
        }
    }
    Ok(())
}

/// Writes the private key (PKCS#8 PEM, created with mode 0600) and the public key.
///
/// # Errors
/// As [`check_free`]; [`Error::File`] when a directory or file cannot be created or written;
/// the SDK's [`ibkr_oauth::Error::KeyExport`].
pub fn write_key_pair(key: &PrivateKey, paths: &KeyPaths, force: bool) -> Result<(), Error> {
    check_free(paths, force)?;
    let pem = key.to_pkcs8_pem()?;
    write_new_file(&paths.private, pem.as_bytes(), 0o600, force)?;
    write_new_file(&paths.public, key.public_key_pem().as_bytes(), 0o644, force)
}

/// Creates `path` with `mode` (on Unix) and writes `bytes`. The mode is set when the file is
/// created, never after, so the key is not readable by others for a moment: with `force` an
/// existing file is removed first rather than truncated (truncating keeps its old mode).
fn write_new_file(path: &Path, bytes: &[u8], mode: u32, force: bool) -> Result<(), Error> {
    let file_error = |action, source| Error::File {
        action,
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| Error::File {
            action: "create the directory",
            path: parent.to_path_buf(),
            source: e,
        })?;
    }
    if force {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(file_error("replace", e)),
        }
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == ErrorKind::AlreadyExists {
            Error::FileExists {
                path: path.to_path_buf(),
            }
        } else {
            file_error("create", e)
        }
    })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| file_error("write", e))
}

/// The path made absolute for printing (as given if that fails).
pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Whether the client must be told the algorithm: the signer picks another for this key type.
pub(crate) fn needs_alg_setting(algorithm: Algorithm) -> bool {
    algorithm != algorithm.key_type().default_algorithm()
}
