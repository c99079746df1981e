//! Unit tests of `session`.

use super::*;
use crate::Error;

fn info(status: u16, request_id: Option<&str>) -> Arc<ResponseInfo> {
    Arc::new(ResponseInfo {
        status: http::StatusCode::from_u16(status).unwrap(),
        content_type: None,
        server_date: None,
        retry_after: None,
        request_id: request_id.map(str::to_owned),
    })
}

fn every() -> Vec<SessionError> {
    vec![
        SessionError::Refused {
            call: SessionCall::CreateSso,
            detail: Some(Arc::from("Access token expired")),
            response: info(401, Some("x-request-id: r1")),
        },
        SessionError::Refused {
            call: SessionCall::Tickle,
            detail: None,
            response: info(503, None),
        },
        SessionError::InvalidResponse {
            call: SessionCall::Validate,
            reason: Arc::from("not JSON"),
            response: info(200, Some("x-request-id: r2")),
        },
        SessionError::TooLarge {
            call: SessionCall::Tickle,
            limit: 65_536,
            response: info(200, None),
        },
        SessionError::Transport {
            call: SessionCall::Logout,
            url: Arc::from("https://api.ibkr.com/v1/api/logout"),
            timeout: true,
            source: Arc::new(std::io::Error::other("deadline has elapsed")),
        },
        SessionError::NoBridge { reason: None },
        SessionError::Competing {
            reason: Some(Arc::from("competing")),
        },
        SessionError::Closed,
        SessionError::Fenced,
        SessionError::IpResolver {
            message: Arc::from("no egress"),
        },
    ]
}

#[test]
fn each_message_names_what_to_do_once_and_not_its_source() {
    for e in every() {
        let text = e.to_string();
        assert!(
            text.contains("; ") || text.contains(": "),
            "says what to do: {text}"
        );
        if let Some(source) = std::error::Error::source(&e) {
            assert!(!text.contains(&source.to_string()), "{text}");
        }
        if let Some(id) = e.response().and_then(|r| r.request_id.clone()) {
            assert!(text.contains(&id), "quotes the request id: {text}");
        }
        let outer = Error::from(e.clone());
        assert_eq!(outer.kind(), e.kind());
        assert_eq!(outer.to_string(), text, "joins Error transparently");
    }
}

#[test]
fn kinds_and_retries() {
    let kinds: Vec<_> = every().iter().map(SessionError::kind).collect();
    use crate::ErrorKind::*;
    assert_eq!(
        kinds,
        vec![
            Refused,
            Refused,
            InvalidResponse,
            InvalidResponse,
            Transport,
            Session,
            Session,
            Session,
            Session,
            Configuration
        ]
    );
    let retryable: Vec<_> = every().iter().map(SessionError::is_retryable).collect();
    assert_eq!(
        retryable,
        vec![
            false, true, false, false, true, false, false, false, false, false
        ]
    );
    assert!(every()[0].is_unauthorized());
    assert_eq!(every()[0].call(), Some(SessionCall::CreateSso));
}

#[cfg(feature = "pacing")]
#[test]
fn a_paced_call_names_the_call_and_not_its_source() {
    let e = SessionError::Paced {
        call: SessionCall::Validate,
        source: crate::pacing::PacingError::OverLimit {
            endpoint: "/sso/validate".into(),
            wait: std::time::Duration::from_secs(59),
            max_wait: std::time::Duration::ZERO,
        },
    };
    let text = e.to_string();
    assert!(
        text.starts_with("GET /v1/api/sso/validate was not sent"),
        "{text}"
    );
    let source = std::error::Error::source(&e).unwrap().to_string();
    assert!(!text.contains(&source), "{text}");
    assert_eq!(e.kind(), ErrorKind::Transport);
    assert!(e.is_retryable());
    assert_eq!(e.call(), Some(SessionCall::Validate));
}
