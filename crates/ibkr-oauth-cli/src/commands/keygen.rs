//! `ibkr-oauth keygen`: a new key pair as PEM files, the private one created with mode 0600,
//! and what to register with IBKR.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

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
    let algorithm =
        crate::config::algorithm_from(std::env::var(ibkr_oauth::env_vars::ALG).ok(), args.alg)?
            .unwrap_or_default();
    let key = PrivateKey::generate(algorithm)?;
    write_key_pair(&key, &paths, args.files.force)?;
    let private = absolute(&paths.private);
    let public = absolute(&paths.public);
    let mut text = format!(
        "generated an {} key pair for {}\n  private key: {} (mode 0600: keep it secret, never \
         share it)\n  public key:  {}\n\nRegister this public key with IBKR under the key id \
         (kid) {:?}:\n{}\n\n{}\nThen configure the client:\n  export {}\n  export {}\n  export \
         IBKR_CLIENT_ID=...   # the client id IBKR gives you\n",
        describe_key(&key),
        algorithm,
        private.display(),
        public.display(),
        args.key_id,
        key.public_key_pem().trim_end(),
        super::jwk::describe(
            &key,
            &key.public_jwk(&args.key_id, algorithm)?,
            &key.thumbprint()?
        ),
        shell_assignment("IBKR_KEY_ID", &args.key_id),
        shell_assignment("IBKR_PRIVATE_KEY", &private.to_string_lossy()),
    );
    if needs_alg_setting(algorithm) {
        text.push_str(&format!(
            "  export {}\n",
            shell_assignment("IBKR_ALG", algorithm.as_str())
        ));
    }
    emit(out, &text)
}

/// Fails with [`Error::FileExists`] if a file of the pair exists and `force` is off, with
/// [`Error::Config`] if both paths name the same file or one names a directory, and with
/// [`Error::File`] if a directory on the way cannot be looked up.
pub fn check_free(paths: &KeyPaths, force: bool) -> Result<(), Error> {
    // Compared as the files they name, not as text: `a.pem` and `./a.pem` are one file.
    if resolve(&paths.private)? == resolve(&paths.public)? {
        return Err(Error::Config(format!(
            "the private key ({}) and the public key ({}) would be written to the same file; \
             give two different paths",
            paths.private.display(),
            paths.public.display()
        )));
    }
    for path in [&paths.private, &paths.public] {
        // symlink_metadata: a dangling link is still something not to overwrite.
        match fs::symlink_metadata(path) {
            Ok(metadata) if metadata.is_dir() => {
                return Err(Error::Config(format!(
                    "{} is a directory; give the path of a file",
                    path.display()
                )));
            }
            Ok(_) if !force => return Err(Error::FileExists { path: path.clone() }),
            _ => {}
        }
    }
    Ok(())
}

/// The file `path` names: its directory with links and `..` resolved, joined to its name. The
/// directory may not exist yet (it is created on writing): the part that exists is resolved,
/// the rest is taken as written, as `create_dir_all` will make it.
fn resolve(path: &Path) -> Result<PathBuf, Error> {
    let name = path.file_name().ok_or_else(|| {
        Error::Config(format!(
            "{} is not a file path; give one that ends in a file name",
            path.display()
        ))
    })?;
    let lookup_error = |source| Error::File {
        action: "look up the directory of",
        path: path.to_path_buf(),
        source,
    };
    let mut existing = std::path::absolute(parent_dir(path)).map_err(lookup_error)?;
    let mut missing = Vec::new();
    let mut dir = loop {
        match fs::canonicalize(&existing) {
            Ok(dir) => break dir,
            Err(e) if e.kind() == ErrorKind::NotFound => match existing.components().next_back() {
                Some(last @ (Component::Normal(_) | Component::ParentDir)) => {
                    missing.push(last.as_os_str().to_owned());
                    existing.pop();
                }
                _ => return Err(lookup_error(e)),
            },
            Err(e) => return Err(lookup_error(e)),
        }
    };
    for part in missing.iter().rev() {
        if part == Component::ParentDir.as_os_str() {
            dir.pop();
        } else {
            dir.push(part);
        }
    }
    dir.push(name);
    Ok(dir)
}

/// The directory `path` is in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes the private key (PKCS#8 PEM, created with mode 0600) and the public key.
///
/// Both are written to new files next to their targets first, and moved into place only when
/// both are complete: on a failure the files that were there are left as they were.
///
/// # Errors
/// As [`check_free`]; [`Error::File`] when a directory or file cannot be created or written;
/// the SDK's [`ibkr_oauth::KeyError::Export`].
pub fn write_key_pair(key: &PrivateKey, paths: &KeyPaths, force: bool) -> Result<(), Error> {
    check_free(paths, force)?;
    let pem = key.to_pkcs8_pem()?;
    let private = PendingFile::write(&paths.private, pem.as_bytes(), 0o600)?;
    let public = PendingFile::write(&paths.public, key.public_key_pem().as_bytes(), 0o644)?;
    // The public key first: should the private one then fail to move, the old private key is
    // still there, and its public key can be derived from it again.
    public.move_into_place(force)?;
    private.move_into_place(force).inspect_err(|_| {
        if !force {
            // Made by this run a moment ago: no half of a pair is left.
            let _ = fs::remove_file(&paths.public);
        }
    })
}

/// A file written under a temporary name in its target's directory; removed when dropped
/// unless moved into place.
struct PendingFile {
    temp: PathBuf,
    target: PathBuf,
    moved: bool,
}

impl PendingFile {
    /// Creates the temporary file with `mode` (on Unix) and writes `bytes`. The mode is set
    /// when the file is created, never after, so the key is not readable by others for a
    /// moment; `create_new` never opens an existing file or follows a link.
    fn write(target: &Path, bytes: &[u8], mode: u32) -> Result<Self, Error> {
        let dir = parent_dir(target);
        fs::create_dir_all(dir).map_err(|source| Error::File {
            action: "create the directory",
            path: dir.to_path_buf(),
            source,
        })?;
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut attempt = 0;
        let (mut file, temp) = loop {
            // Short and fixed: any target name a file system takes leaves room for it.
            let temp = dir.join(format!(
                ".ibkr-oauth-{}-{nanos:09}-{attempt}.tmp",
                std::process::id()
            ));
            match options.open(&temp) {
                Ok(file) => break (file, temp),
                Err(e) if e.kind() == ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
                Err(source) => {
                    return Err(Error::File {
                        action: "create a temporary file in",
                        path: dir.to_path_buf(),
                        source,
                    });
                }
            }
        };
        let pending = Self {
            temp,
            target: target.to_path_buf(),
            moved: false,
        };
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|source| pending.error("write", source))?;
        Ok(pending)
    }

    /// Gives the file its target name. With `force` a rename, which replaces a file or a link
    /// (never writing through it); without, a hard link, which fails if the target exists,
    /// even one made since [`check_free`].
    fn move_into_place(mut self, force: bool) -> Result<(), Error> {
        if !force {
            match fs::hard_link(&self.temp, &self.target) {
                // Dropping `self` removes the temporary name.
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    return Err(Error::FileExists {
                        path: self.target.clone(),
                    });
                }
                // A file system without hard links: check, then rename.
                Err(_) if fs::symlink_metadata(&self.target).is_ok() => {
                    return Err(Error::FileExists {
                        path: self.target.clone(),
                    });
                }
                Err(_) => {}
            }
        }
        fs::rename(&self.temp, &self.target).map_err(|source| self.error("write", source))?;
        self.moved = true;
        Ok(())
    }

    fn error(&self, action: &'static str, source: std::io::Error) -> Error {
        Error::File {
            action,
            path: self.target.clone(),
            source,
        }
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.moved {
            // Nothing more to do if it cannot be removed: it holds no more than the target would.
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// The path made absolute for printing (as given if that fails).
pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Whether the client must be told the algorithm: the signer picks another for this key type.
pub(crate) fn needs_alg_setting(algorithm: Algorithm) -> bool {
    algorithm != algorithm.key_type().default_algorithm()
}
