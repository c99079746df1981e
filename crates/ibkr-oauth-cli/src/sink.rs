//! Sink files: the current token written to a file for programs that read a file rather than
//! speak HTTP to a socket (a shell script, a cron job, a notebook), as Vault agent's file sinks.
//!
//! `serve --sink PATH[:MODE]` writes the bare token, `--sink-json PATH[:MODE]` the
//! [contract](crate::contract)'s JSON object. Each write is atomic: a temporary file in the same
//! directory (created with the mode, never readable by others), fsync, rename over `PATH`, fsync
//! of the directory; a reader sees the old file or the new one, never half of one. The mode is
//! 0600 by default; a mode that lets others (not the owner or the group) read or write is
//! refused. An existing symlink at `PATH`, or a file owned by another user, is refused rather
//! than replaced. The file is rewritten on every refresh and removed on a clean shutdown.

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ibkr_oauth::{ExposeSecret as _, Token};

/// What a sink file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The bare access token, no newline: `$(cat PATH)`.
    Token,
    /// The contract's JSON object (see [`crate::contract`]).
    Json,
}

/// One sink: where, with which mode, in which format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sink {
    /// The file.
    pub path: PathBuf,
    /// Its permission bits (0600 by default).
    pub mode: u32,
    /// What it holds.
    pub format: Format,
}

/// Why a sink could not be set up or written. Each says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// `PATH:MODE` with a mode that is not octal permission bits.
    #[error("the sink {spec:?} has mode {mode:?}, not octal permission bits like 0600 or 0640")]
    BadMode {
        /// The flag's value.
        spec: String,
        /// The mode part.
        mode: String,
    },
    /// A mode that would let other users read or write the token.
    #[error(
        "the sink mode {mode:04o} lets other users read or write the token; use 0600, or 0640 \
         to share it with the file's group"
    )]
    OpenToOthers {
        /// The mode given.
        mode: u32,
    },
    /// A symlink where the sink goes.
    #[error(
        "{} is a symlink; a sink is written only to a real file (remove the link, or point \
         --sink at its target)", path.display()
    )]
    Symlink {
        /// The sink's path.
        path: PathBuf,
    },
    /// Something else than a regular file where the sink goes.
    #[error("{} exists and is not a regular file; pick another sink path", path.display())]
    NotAFile {
        /// The sink's path.
        path: PathBuf,
    },
    /// A file owned by another user where the sink goes.
    #[error(
        "{} belongs to user {owner}, not to this user ({me}); remove it, or pick another sink \
         path", path.display()
    )]
    NotOwned {
        /// The sink's path.
        path: PathBuf,
        /// The file's owner (uid).
        owner: u32,
        /// This process's uid.
        me: u32,
    },
    /// The file system refused (the directory is missing, read-only, not ours...).
    #[error("could not {action} the sink {}; check the directory and its permissions", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The sink's path.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl Sink {
    /// Parses `PATH[:MODE]` (MODE in octal, 0600 by default). A path that itself holds a colon
    /// followed by something other than octal digits is taken whole.
    ///
    /// # Errors
    /// [`SinkError::BadMode`] for a mode with other characters than octal digits after a
    /// colon that looks like a mode (`:` then 3 or 4 characters), [`SinkError::OpenToOthers`]
    /// for a mode others could read or write through.
    pub fn parse(spec: &str, format: Format) -> Result<Self, SinkError> {
        let (path, mode) = match spec.rsplit_once(':') {
            Some((path, mode)) if !path.is_empty() && (3..=4).contains(&mode.len()) => {
                let bits = u32::from_str_radix(mode, 8).map_err(|_| SinkError::BadMode {
                    spec: spec.to_owned(),
                    mode: mode.to_owned(),
                })?;
                (path, bits)
            }
            _ => (spec, 0o600),
        };
        if mode > 0o777 {
            return Err(SinkError::BadMode {
                spec: spec.to_owned(),
                mode: format!("{mode:o}"),
            });
        }
        if mode & 0o007 != 0 {
            return Err(SinkError::OpenToOthers { mode });
        }
        Ok(Self {
            path: PathBuf::from(path),
            mode,
            format,
        })
    }

    /// Checks that the sink can be written where it goes: no symlink, no file of another user,
    /// nothing but a regular file.
    ///
    /// # Errors
    /// [`SinkError::Symlink`], [`SinkError::NotOwned`], [`SinkError::NotAFile`], or
    /// [`SinkError::Io`] when the path cannot be looked at.
    pub fn check(&self) -> Result<(), SinkError> {
        let meta = match std::fs::symlink_metadata(&self.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(SinkError::Io {
                    action: "look at",
                    path: self.path.clone(),
                    source,
                });
            }
        };
        if meta.file_type().is_symlink() {
            return Err(SinkError::Symlink {
                path: self.path.clone(),
            });
        }
        if !meta.file_type().is_file() {
            return Err(SinkError::NotAFile {
                path: self.path.clone(),
            });
        }
        let me = rustix::process::getuid().as_raw();
        if meta.uid() != me {
            return Err(SinkError::NotOwned {
                path: self.path.clone(),
                owner: meta.uid(),
                me,
            });
        }
        Ok(())
    }

    /// Writes `token` atomically (see the [module docs](self)).
    ///
    /// # Errors
    /// What [`check`](Self::check) refuses; [`SinkError::Io`] when a step fails (the temporary
    /// file is removed again).
    pub fn write(&self, token: &Token) -> Result<(), SinkError> {
        let contents = match self.format {
            Format::Token => token.access_token().expose_secret().to_owned(),
            Format::Json => format!("{}\n", crate::contract::token_object(token, true)),
        };
        self.write_text(&contents)
    }

    /// Writes `contents` (a secret: the bare token, or the SSO token of `exec --session`)
    /// atomically, whatever the sink's format, with the checks of [`write`](Self::write).
    ///
    /// # Errors
    /// As [`write`](Self::write).
    pub fn write_text(&self, contents: &str) -> Result<(), SinkError> {
        self.check()?;
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let temp = dir.join(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let io = |action: &'static str| {
            let path = self.path.clone();
            move |source| SinkError::Io {
                action,
                path,
                source,
            }
        };
        let written = (|| {
            // Created with the mode (less the umask), never looser; then set to it exactly.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(self.mode)
                .open(&temp)
                .map_err(io("create a temporary file beside"))?;
            file.set_permissions(std::fs::Permissions::from_mode(self.mode))
                .map_err(io("set the mode of"))?;
            file.write_all(contents.as_bytes()).map_err(io("write"))?;
            file.sync_all().map_err(io("flush"))?;
            std::fs::rename(&temp, &self.path).map_err(io("move into place"))?;
            // The rename itself reaches the disk with the directory's entry.
            if let Ok(dir) = std::fs::File::open(dir) {
                let _ = dir.sync_all();
            }
            Ok(())
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written
    }

    /// Removes the file, if it is still a file of ours (a clean shutdown).
    pub fn remove(&self) {
        if self.check().is_ok() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes `token` to every sink; the failures, each with its sink.
pub fn write_all(sinks: &[Sink], token: &Token) -> Vec<SinkError> {
    sinks.iter().filter_map(|s| s.write(token).err()).collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn token(value: &str) -> Token {
        Token::builder(ibkr_oauth::SecretString::from(value.to_owned()))
            .token_type("Bearer")
            .expires_in(Duration::from_secs(60))
            .build()
            .expect("a token")
    }

    #[test]
    fn specs_parse_with_a_default_mode_and_refuse_open_modes() {
        let sink = Sink::parse("/run/x/token", Format::Token).expect("parses");
        assert_eq!(
            (sink.path, sink.mode),
            (PathBuf::from("/run/x/token"), 0o600)
        );
        let sink = Sink::parse("/run/x/token.json:0640", Format::Json).expect("parses");
        assert_eq!(
            (sink.path, sink.mode),
            (PathBuf::from("/run/x/token.json"), 0o640)
        );
        assert!(matches!(
            Sink::parse("/run/x:0644", Format::Token),
            Err(SinkError::OpenToOthers { mode: 0o644 })
        ));
        assert!(matches!(
            Sink::parse("/run/x:06x0", Format::Token),
            Err(SinkError::BadMode { .. })
        ));
        // A colon that is no mode belongs to the path.
        let sink = Sink::parse("/run/a:b/token", Format::Token).expect("parses");
        assert_eq!(sink.path, PathBuf::from("/run/a:b/token"));
    }

    #[test]
    fn writes_atomically_with_the_mode_and_removes() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("token");
        let sink = Sink::parse(&format!("{}:0640", path.display()), Format::Token).expect("ok");
        sink.write(&token("first")).expect("written");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "first");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        sink.write(&token("second")).expect("rewritten");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "second");
        // Nothing but the sink is left in the directory: no temporary file.
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
        sink.remove();
        assert!(!path.exists());
    }

    #[test]
    fn refuses_a_symlink_and_does_not_follow_it() {
        let dir = tempfile::tempdir().expect("dir");
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "precious").expect("target");
        let link = dir.path().join("token");
        std::os::unix::fs::symlink(&target, &link).expect("link");
        let sink = Sink::parse(&link.to_string_lossy(), Format::Token).expect("parses");
        assert!(matches!(
            sink.write(&token("t")),
            Err(SinkError::Symlink { .. })
        ));
        sink.remove();
        assert!(
            std::fs::symlink_metadata(&link).is_ok(),
            "the link is left alone"
        );
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "precious");
    }

    #[test]
    fn refuses_a_directory() {
        let dir = tempfile::tempdir().expect("dir");
        let sink = Sink::parse(&dir.path().to_string_lossy(), Format::Json).expect("parses");
        assert!(matches!(
            sink.write(&token("t")),
            Err(SinkError::NotAFile { .. })
        ));
    }
}
