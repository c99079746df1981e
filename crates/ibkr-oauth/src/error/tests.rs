//! Every error variant, rendered the way anyhow prints a chain (`{:#}`: each level's message
//! joined by `: `): no level may repeat text that another level says.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::StatusCode;

use super::*;
use super::{ClientSetting, ProviderSetting, RequestSetting, SignerField, SignerSetting};
use crate::assertion::{Algorithm, KeyOrigin, KeyType};
use crate::response::{RawResponse, map_response};

fn chain(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut levels = vec![error.to_string()];
    let mut cause = error.source();
    while let Some(inner) = cause {
        levels.push(inner.to_string());
        cause = inner.source();
    }
    levels
}

fn check_once(error: &(dyn std::error::Error + 'static)) {
    let levels = chain(error);
    for (i, a) in levels.iter().enumerate() {
        assert!(!a.trim().is_empty(), "an empty level in {levels:?}");
        for b in levels.iter().skip(i + 1) {
            assert!(
                !a.contains(b.as_str()) && !b.contains(a.as_str()),
                "repeated text in the chain: {levels:?}"
            );
        }
    }
}

fn response(status: u16, content_type: &str, body: &str, location: Option<&str>) -> Error {
    let raw = RawResponse {
        status: StatusCode::from_u16(status).unwrap(),
        content_type: Some(content_type.into()),
        date: Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
        retry_after: Some("30".into()),
        location: location.map(Into::into),
        request_id: Some("x-request-id: r-1".into()),
        www_authenticate: None,
        body: Bytes::copy_from_slice(body.as_bytes()),
        received_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480),
    };
    map_response(&raw).unwrap_err()
}

fn io(kind: std::io::ErrorKind, text: &str) -> Cause {
    Arc::new(std::io::Error::new(kind, text.to_owned()))
}

fn every_error() -> Vec<Error> {
    let file = KeyOrigin::File(PathBuf::from("/etc/ibkr/private.pem"));
    let url: Arc<str> = Arc::from("https://api.ibkr.com/oauth2/api/v1/token");
    let keys = vec![
        KeyError::FileRead {
            origin: file.clone(),
            io: Arc::new(std::io::Error::from(std::io::ErrorKind::NotFound)),
        },
        KeyError::FileTooLarge {
            origin: file.clone(),
            limit: 1 << 20,
        },
        KeyError::NotAFile {
            origin: file.clone(),
        },
        KeyError::EnvVar {
            name: "IBKR_PRIVATE_KEY".into(),
        },
        KeyError::Empty {
            origin: file.clone(),
        },
        KeyError::NotPem {
            origin: file.clone(),
        },
        KeyError::IsPublic {
            origin: file.clone(),
        },
        KeyError::IsCertificate {
            origin: file.clone(),
        },
        KeyError::FormatUnsupported {
            origin: file.clone(),
            label: "OPENSSH PRIVATE KEY".into(),
        },
        KeyError::Encrypted {
            origin: file.clone(),
        },
        KeyError::EncryptedKeysDisabled {
            origin: file.clone(),
        },
        KeyError::LegacyEncrypted {
            origin: file.clone(),
        },
        KeyError::PassphraseWrong {
            origin: file.clone(),
        },
        KeyError::EncryptionUnsupported {
            origin: file.clone(),
            scheme: "PBES1".into(),
        },
        KeyError::KdfCostTooHigh {
            origin: file.clone(),
            parameter: "PBKDF2 iterations",
            value: u64::from(u32::MAX),
            cap: 1_000_000,
        },
        KeyError::Malformed {
            origin: file.clone(),
            format: "PKCS#8",
            reason: "its END line is missing",
        },
        KeyError::TypeUnsupported {
            origin: file.clone(),
            found: "a DSA key".into(),
        },
        KeyError::RsaTooSmall {
            origin: file.clone(),
        },
        KeyError::AlgorithmMismatch {
            origin: file.clone(),
            key_type: KeyType::Rsa,
            algorithm: Algorithm::ES256,
        },
        KeyError::Generation {
            key_type: KeyType::Rsa,
        },
        KeyError::Export {
            key_type: KeyType::Ed25519,
        },
    ];
    let mut errors: Vec<Error> = keys.into_iter().map(Error::from).collect();
    errors.extend([
        ConfigError::Request(RequestSetting::EmptyScope).into(),
        ConfigError::Client(ClientSetting::PlainHttp {
            host: "example.com".into(),
        })
        .into(),
        ConfigError::Signer(SignerSetting::Empty {
            field: SignerField::KeyId,
        })
        .into(),
        ConfigError::Provider(ProviderSetting::ScopesWithCustomFetch).into(),
        ConfigError::UnknownAlgorithm {
            name: "HS256".into(),
        }
        .into(),
        SignError::ClockOutOfRange.into(),
        SignError::Failed {
            algorithm: Algorithm::RS256,
        }
        .into(),
        SignError::Payload.into(),
        response(
            400,
            "application/problem+json",
            r#"{"type":"/simple","title":"Bad Request","detail":"invalid client assertion"}"#,
            None,
        ),
        response(
            503,
            "application/json",
            r#"{"error":"temporarily_unavailable","error_description":"try later"}"#,
            None,
        ),
        response(502, "text/html", "<h1>502 Bad Gateway</h1>", None),
        response(
            307,
            "text/plain",
            "",
            Some("https://elsewhere.example/token"),
        ),
        response(200, "application/json", r#"{"token_type":"Bearer"}"#, None),
        Error::ResponseTooLarge {
            limit: 65_536,
            response: Arc::new(ResponseInfo {
                status: StatusCode::OK,
                content_type: None,
                server_date: None,
                retry_after: None,
                request_id: None,
            }),
        },
        Error::Timeout {
            url: url.clone(),
            source: io(std::io::ErrorKind::TimedOut, "operation timed out"),
        },
        Error::Connect {
            url: url.clone(),
            source: io(
                std::io::ErrorKind::ConnectionRefused,
                "Connection refused (os error 111)",
            ),
        },
        Error::Connect {
            url: url.clone(),
            source: io(
                std::io::ErrorKind::InvalidData,
                "received corrupt message of type InvalidContentType",
            ),
        },
        Error::Transport {
            url,
            source: io(
                std::io::ErrorKind::ConnectionReset,
                "connection reset by peer",
            ),
        },
        Error::NoRuntime,
        Error::FetchAborted,
        Error::custom(
            ErrorKind::Transport,
            "the KMS did not answer; retry",
            Some("deadline exceeded".into()),
        ),
    ]);
    // The Web API's refusal, which has its own type.
    #[cfg(feature = "middleware")]
    errors.push(Error::Api(Arc::new(crate::api::ApiError {
        path: "/gw/api/v1/echo/https",
        problem: Some(Arc::new(crate::problem::Problem::from_object(
            StatusCode::FORBIDDEN,
            serde_json::json!({"title": "Forbidden", "detail": "insufficient scope"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        ))),
        challenge: Some(Arc::from(
            "Bearer error=\"insufficient_scope\", scope=\"echo.read\"",
        )),
        reason: None,
        response: Arc::new(ResponseInfo {
            status: StatusCode::FORBIDDEN,
            content_type: Some("application/problem+json".into()),
            server_date: None,
            retry_after: None,
            request_id: Some("x-request-id: r-2".into()),
        }),
    })));
    errors
}

#[test]
fn no_message_repeats_its_source() {
    let errors = every_error();
    assert!(errors.len() >= 42, "{}", errors.len());
    for error in &errors {
        check_once(error);
    }
}

#[test]
fn every_kind_is_reachable() {
    let kinds: std::collections::HashSet<_> = every_error().iter().map(Error::kind).collect();
    for kind in [
        ErrorKind::Configuration,
        ErrorKind::Key,
        ErrorKind::Refused,
        ErrorKind::Transport,
        ErrorKind::InvalidResponse,
        ErrorKind::Internal,
    ] {
        assert!(kinds.contains(&kind), "{kind}");
    }
}

#[test]
fn tls_to_a_plain_http_port_is_said_plainly() {
    let error = Error::Connect {
        url: Arc::from("https://127.0.0.1:8080/oauth2/api/v1/token"),
        source: io(
            std::io::ErrorKind::InvalidData,
            "received corrupt message of type InvalidContentType",
        ),
    };
    let text = error.to_string();
    assert!(text.contains("speaks http, not https"), "{text}");
    assert!(text.contains("127.0.0.1:8080"), "{text}");
}

#[test]
fn a_501_is_not_retryable() {
    let error = response(
        501,
        "application/problem+json",
        r#"{"title":"Not Implemented"}"#,
        None,
    );
    assert!(!error.is_retryable());
    assert!(!error.to_string().contains("retry"), "{error}");
    assert!(response(503, "application/problem+json", "{}", None).is_retryable());
}

#[test]
fn error_is_send_sync_and_cheap_to_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Error>();
    // Every part is Copy or shared (Arc): a clone bumps reference counts, never copies text.
    assert!(
        std::mem::size_of::<Error>() <= 72,
        "{}",
        std::mem::size_of::<Error>()
    );
}
