//! Where a key came from ([`KeyOrigin`]), shown in key errors without echoing key material.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a key came from, named in every key error so the user knows which file to fix.
///
/// ```
/// use ibkr_oauth::key::KeyOrigin;
/// use ibkr_oauth::{KeyError, PrivateKey};
///
/// let err = PrivateKey::from_pem_file("/no/such/key.pem").unwrap_err();
/// assert!(matches!(&err, KeyError::FileRead { origin: KeyOrigin::File(path), .. }
///     if path.ends_with("key.pem")));
/// assert!(err.to_string().contains("/no/such/key.pem"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyOrigin {
    /// A file read by [`PrivateKey::from_pem_file`](crate::PrivateKey::from_pem_file) or
    /// [`PrivateKey::from_encrypted_pem_file`](crate::PrivateKey::from_encrypted_pem_file).
    File(PathBuf),
    /// A string passed to [`PrivateKey::from_pem`](crate::PrivateKey::from_pem) or [`PrivateKey::from_encrypted_pem`](crate::PrivateKey::from_encrypted_pem).
    PemString,
    /// An environment variable read by [`PrivateKey::from_env`](crate::PrivateKey::from_env), holding PEM text (`file` is
    /// `None`) or the path of a file.
    EnvVar {
        /// The variable's name.
        name: String,
        /// The file the variable names, if it holds a path.
        file: Option<PathBuf>,
    },
    /// A key made by [`PrivateKey::generate`](crate::PrivateKey::generate).
    Generated,
}

/// A path as errors show it: a "path" that is really key material (base64 pasted where a path
/// or PEM text was expected) is not echoed back.
struct ShownPath<'a>(&'a Path);

impl ShownPath<'_> {
    /// Whether the "path" may be key material: PEM pieces (a BEGIN line with a typo, or a body
    /// and END line without their BEGIN), line breaks, or a long run of base64. Real key
    /// paths have none of these.
    fn may_be_key_material(text: &str) -> bool {
        let base64ish =
            |c: char| c.is_ascii_alphanumeric() || "+/=".contains(c) || c.is_whitespace();
        text.contains("----")
            || text.contains("PRIVATE KEY")
            || text.contains(['\n', '\r'])
            || text.len() > 512
            || (text.len() >= 64 && text.chars().all(base64ish))
    }
}

impl fmt::Display for ShownPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string_lossy();
        if Self::may_be_key_material(&text) {
            write!(
                f,
                "[redacted: {} characters that look like key material, not a path; pass the PEM \
                 text with its -----BEGIN and -----END lines, or the path of a key file]",
                text.len()
            )
        } else {
            write!(f, "{}", self.0.display())
        }
    }
}

impl fmt::Debug for KeyOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyOrigin::File(path) => f
                .debug_tuple("File")
                .field(&format_args!("{}", ShownPath(path)))
                .finish(),
            KeyOrigin::PemString => f.write_str("PemString"),
            KeyOrigin::EnvVar { name, file } => f
                .debug_struct("EnvVar")
                .field("name", name)
                .field(
                    "file",
                    &file.as_deref().map(|path| format!("{}", ShownPath(path))),
                )
                .finish(),
            KeyOrigin::Generated => f.write_str("Generated"),
        }
    }
}

impl fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyOrigin::File(path) => write!(f, "key file {}", ShownPath(path)),
            KeyOrigin::PemString => f.write_str("the PEM string"),
            KeyOrigin::EnvVar { name, file: None } => {
                write!(f, "the PEM text in environment variable {name}")
            }
            KeyOrigin::EnvVar {
                name,
                file: Some(path),
            } => write!(
                f,
                "key file {} (named by environment variable {name})",
                ShownPath(path)
            ),
            KeyOrigin::Generated => f.write_str("the generated key"),
        }
    }
}
