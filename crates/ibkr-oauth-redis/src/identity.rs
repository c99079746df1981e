//! [`TokenIdentity`]: what makes two tokens different, so that two processes share an entry
//! only when each would have been granted the same token.

use std::collections::BTreeSet;

use crate::key::hex;

/// The longest readable client-id prefix in a cache name (the digest makes it unique).
const NAME_PREFIX_MAX: usize = 64;

/// Everything that makes two tokens different: the client id, the key id that signs, the
/// audience of the assertion, the token endpoint's base URL and the set of scopes asked for.
///
/// [`cache_name`](Self::cache_name) names the shared entry after all of them (a digest), so
/// that a process asking for other scopes, or of another client, never reads another's entry;
/// given to [`RedisTokenSourceBuilder::identity`](crate::RedisTokenSourceBuilder::identity), the
/// client id and scope set are also sealed in every entry the process writes and checked in
/// every entry it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    client_id: String,
    key_id: String,
    audience: String,
    base_url: String,
    scopes: BTreeSet<String>,
}

impl TokenIdentity {
    /// The identity of the tokens granted to `client_id` (signing with `key_id` for
    /// `audience`) by the server at `base_url`, for `scope` (space-delimited, in any order,
    /// repeats ignored; `None` for no scope parameter).
    pub fn new(
        client_id: impl Into<String>,
        key_id: impl Into<String>,
        audience: impl Into<String>,
        base_url: impl Into<String>,
        scope: Option<&str>,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            key_id: key_id.into(),
            audience: audience.into(),
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            scopes: scope
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
        }
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The scope set, normalised: sorted, without repeats, space-delimited (empty for none).
    pub fn scope_set(&self) -> String {
        self.scopes
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A cache name for [`RedisTokenSource::builder`](crate::RedisTokenSource::builder): a
    /// readable prefix of the client id, then the hex of SHA-256 over every field (16 bytes),
    /// e.g. `my-client:3f2a...`.
    pub fn cache_name(&self) -> String {
        let mut input = Vec::new();
        for field in [
            "ibkr-oauth-redis identity v1",
            &self.client_id,
            &self.key_id,
            &self.audience,
            &self.base_url,
            &self.scope_set(),
        ] {
            // Length-prefixed, so that no two field lists give the same input.
            input.extend_from_slice(&(field.len() as u64).to_be_bytes());
            input.extend_from_slice(field.as_bytes());
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
        let readable: String = self
            .client_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .take(NAME_PREFIX_MAX)
            .collect();
        format!("{readable}:{}", hex(&digest.as_ref()[..16]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(scope: Option<&str>) -> TokenIdentity {
        TokenIdentity::new("c", "main", "aud", "https://api.ibkr.com/", scope)
    }

    #[test]
    fn the_scope_set_is_normalised() {
        let a = id(Some("echo.read sso-sessions.write"));
        let b = id(Some(" sso-sessions.write  echo.read echo.read"));
        assert_eq!(a.scope_set(), "echo.read sso-sessions.write");
        assert_eq!(a, b);
        assert_eq!(a.cache_name(), b.cache_name());
        assert_eq!(id(None).scope_set(), "");
    }

    #[test]
    fn every_field_changes_the_name() {
        let base = id(Some("echo.read"));
        let others = [
            id(Some("sso-sessions.write")),
            id(None),
            TokenIdentity::new(
                "c2",
                "main",
                "aud",
                "https://api.ibkr.com",
                Some("echo.read"),
            ),
            TokenIdentity::new(
                "c",
                "other",
                "aud",
                "https://api.ibkr.com",
                Some("echo.read"),
            ),
            TokenIdentity::new(
                "c",
                "main",
                "aud2",
                "https://api.ibkr.com",
                Some("echo.read"),
            ),
            TokenIdentity::new("c", "main", "aud", "https://x.example", Some("echo.read")),
        ];
        for other in others {
            assert_ne!(base.cache_name(), other.cache_name(), "{other:?}");
        }
        assert!(base.cache_name().starts_with("c:"));
        let odd = TokenIdentity::new("a b\n", "k", "a", "u", None).cache_name();
        assert!(!odd.contains(' ') && !odd.contains('\n'), "{odd}");
    }
}
