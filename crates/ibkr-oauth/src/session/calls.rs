//! The six session calls, each through its generated operation and the transport's capture
//! (body cap, status and headers kept), mapped status and content type first. [`Calls`] is
//! the seam the session's logic runs on, so its healing is tested against a scripted fake in
//! paused time as well as against mockito.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use ibkr_oauth_generated::apis::Error as GeneratedError;
use ibkr_oauth_generated::apis::authorization_sso_sessions_api::gw_api_v1_sso_sessions_post;
use ibkr_oauth_generated::apis::configuration::Configuration;
use ibkr_oauth_generated::apis::trading_session_api::{
    v1_api_iserver_auth_ssodh_init_post, v1_api_iserver_auth_status_post, v1_api_logout_post,
    v1_api_sso_validate_get, v1_api_tickle_get,
};
use reqwest_middleware::{ClientWithMiddleware, Middleware, Next};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::answers::{
    BrokerageStatus, SsoValidation, TickleStatus, parse_brokerage, parse_created, parse_tickle,
    parse_validate, refusal_detail,
};
use super::token::SsoToken;
use super::{SessionCall, SessionError};
use crate::assertion::Signer;
use crate::clock::Clock;
use crate::error::{Error, root_cause};
use crate::models::{BrokerageSessionInitRequest, CreateSessionRequest};
use crate::response::{Media, RawResponse, media};
use crate::token::Token;
use crate::transport::{Captured, capture};

/// IBKR's session calls, as the session's logic sees them.
#[async_trait::async_trait]
pub(crate) trait Calls: Send + Sync + 'static {
    /// `POST /gw/api/v1/sso-sessions` with the access token: a new SSO session.
    async fn create_sso(
        &self,
        access: &Token,
        credential: &str,
        ip: IpAddr,
    ) -> Result<SsoToken, Error>;
    async fn validate(&self, sso: &SsoToken) -> Result<SsoValidation, SessionError>;
    async fn init(&self, sso: &SsoToken, compete: bool) -> Result<BrokerageStatus, SessionError>;
    async fn tickle(&self, sso: &SsoToken) -> Result<TickleStatus, SessionError>;
    async fn status(&self, sso: &SsoToken) -> Result<BrokerageStatus, SessionError>;
    async fn logout(&self, sso: &SsoToken) -> Result<(), SessionError>;
}

/// The real calls, over HTTP.
pub(crate) struct HttpCalls {
    pub(crate) base_url: String,
    pub(crate) http: reqwest::Client,
    pub(crate) user_agent: String,
    pub(crate) max_response_bytes: usize,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) signer: Signer,
    /// Paces the calls with the API's other calls (e.g. the gateway's governor).
    #[cfg(feature = "pacing")]
    pub(crate) pacer: Option<Arc<dyn crate::pacing::Pacer>>,
    /// The session's fence, asked again after the pacer's wait, right before an
    /// sso-sessions or `ssodh/init` leaves.
    pub(crate) fence: Option<super::handover::Fence>,
}

impl HttpCalls {
    /// One call: the generated operation through the capture (and `extra`), and the recorded
    /// response mapped: a 2xx JSON body is returned, anything else is an error.
    async fn call<F, Fut, T, E>(
        &self,
        call: SessionCall,
        bearer: Option<&SsoToken>,
        extra: Option<Arc<dyn Middleware>>,
        operation: F,
    ) -> Result<Bytes, SessionError>
    where
        F: FnOnce(Configuration) -> Fut,
        Fut: Future<Output = Result<T, GeneratedError<E>>>,
    {
        #[cfg(feature = "pacing")]
        let path = call.endpoint().split_once(' ').map_or("", |(_, p)| p);
        #[cfg(feature = "pacing")]
        if let Some(pacer) = &self.pacer {
            pacer
                .acquire(path)
                .await
                .map_err(|source| SessionError::Paced { call, source })?;
        }
        // The pacer may have waited past this process's lease: the last check before sending.
        // The window left (this check to the request's arrival at IBKR) is small, not zero:
        // IBKR takes no fencing token.
        if matches!(call, SessionCall::CreateSso | SessionCall::BrokerageInit)
            && self.fence.as_ref().is_some_and(|may_act| !may_act())
        {
            return Err(SessionError::Fenced);
        }
        let (capture, recording) = capture(self.max_response_bytes, Arc::clone(&self.clock));
        let mut middleware: Vec<Arc<dyn Middleware>> = vec![capture];
        middleware.extend(extra);
        let configuration = Configuration {
            base_path: self.base_url.clone(),
            user_agent: Some(self.user_agent.clone()),
            client: ClientWithMiddleware::new(self.http.clone(), middleware),
            basic_auth: None,
            oauth_access_token: None,
            bearer_access_token: bearer.map(|t| t.secret().expose_secret().to_owned()),
            api_key: None,
        };
        let span = tracing::debug_span!(
            "ibkr_oauth.session_call",
            call = %call,
            status = tracing::field::Empty
        );
        let result = tracing::Instrument::instrument(operation(configuration), span.clone()).await;
        let outcome = recording.take();
        if let Some(Captured::Complete(raw)) = &outcome {
            span.record("status", raw.status.as_u16());
            #[cfg(feature = "pacing")]
            if let (Some(pacer), http::StatusCode::TOO_MANY_REQUESTS) = (&self.pacer, raw.status) {
                let retry_after = raw.info().retry_after;
                pacer.too_many_requests(path, retry_after).await;
            }
        }
        match outcome {
            Some(Captured::Complete(raw)) => map(call, &raw),
            Some(Captured::TooLarge { limit, info }) => Err(SessionError::TooLarge {
                call,
                limit,
                response: Arc::new(info),
            }),
            None => Err(no_answer(call, &self.base_url, result.err())),
        }
    }
}

/// Status and content type first, then the body of a 2xx JSON answer.
fn map(call: SessionCall, raw: &RawResponse) -> Result<Bytes, SessionError> {
    let json = media(raw.content_type.as_deref()) == Media::Json;
    if raw.status.is_success() {
        if json {
            return Ok(raw.body.clone());
        }
        return Err(SessionError::InvalidResponse {
            call,
            reason: Arc::from("a success without a JSON body"),
            response: Arc::new(raw.info()),
        });
    }
    let detail = match media(raw.content_type.as_deref()) {
        Media::Json | Media::Problem => refusal_detail(&raw.body),
        // A plain-text refusal (IBKR's `no bridge` comes as text from some gateways).
        _ => std::str::from_utf8(&raw.body)
            .ok()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Arc::from(crate::sanitize(s, 200))),
    };
    Err(SessionError::Refused {
        call,
        detail,
        response: Arc::new(raw.info()),
    })
}

fn invalid(call: SessionCall, reason: &'static str) -> SessionError {
    SessionError::InvalidResponse {
        call,
        reason: Arc::from(reason),
        response: Arc::new(crate::error::ResponseInfo {
            status: http::StatusCode::OK,
            content_type: Some("application/json".into()),
            server_date: None,
            retry_after: None,
            request_id: None,
        }),
    }
}

/// A failure that left no response: timeout, connect, transfer.
fn no_answer<E>(call: SessionCall, base: &str, error: Option<GeneratedError<E>>) -> SessionError {
    let url: Arc<str> = Arc::from(format!(
        "{base}{}",
        call.endpoint().split_once(' ').map_or("", |(_, p)| p)
    ));
    let (timeout, source): (bool, crate::error::Cause) = match error {
        Some(GeneratedError::Reqwest(e))
        | Some(GeneratedError::ReqwestMiddleware(reqwest_middleware::Error::Reqwest(e))) => {
            (e.is_timeout(), root_cause(Box::new(e)))
        }
        Some(GeneratedError::ReqwestMiddleware(reqwest_middleware::Error::Middleware(e))) => {
            (false, root_cause(e.into()))
        }
        Some(GeneratedError::Io(e)) => (false, Arc::new(e)),
        _ => (false, Arc::new(NoResponse)),
    };
    SessionError::Transport {
        call,
        url,
        timeout,
        source,
    }
}

/// The HTTP stack gave neither a response nor an error.
#[derive(Debug, thiserror::Error)]
#[error("the HTTP stack returned no response")]
struct NoResponse;

/// Puts the already signed sso-sessions JWS in place of the generated operation's JSON body.
struct JwsBody(SecretString);

#[async_trait::async_trait]
impl Middleware for JwsBody {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let body = Bytes::from(self.0.expose_secret().as_bytes().to_vec());
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/jwt"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        *request.body_mut() = Some(reqwest::Body::from(body));
        next.run(request, extensions).await
    }
}

/// The claims of the sso-sessions JWS: the spec's `credential` and `ip`, a fresh `jti`; the
/// signer adds `iss`, `iat` and `exp`.
fn session_claims(
    signer: &Signer,
    credential: &str,
    ip: IpAddr,
) -> Result<serde_json::Map<String, Value>, Error> {
    let request = CreateSessionRequest::new(credential.to_owned(), ip.to_string());
    let Ok(Value::Object(mut claims)) = serde_json::to_value(&request) else {
        return Err(Error::from(crate::assertion::SignError::Payload));
    };
    claims.insert(
        "jti".into(),
        Value::String(crate::assertion::random_jti(signer.algorithm())?),
    );
    Ok(claims)
}

#[async_trait::async_trait]
impl Calls for HttpCalls {
    async fn create_sso(
        &self,
        access: &Token,
        credential: &str,
        ip: IpAddr,
    ) -> Result<SsoToken, Error> {
        let claims = session_claims(&self.signer, credential, ip)?;
        let jws = self.signer.sign_body(claims)?;
        let authorization = format!("Bearer {}", access.access_token().expose_secret());
        let request = CreateSessionRequest::new(credential.to_owned(), ip.to_string());
        let body = self
            .call(
                SessionCall::CreateSso,
                None,
                Some(Arc::new(JwsBody(jws))),
                |configuration| async move {
                    gw_api_v1_sso_sessions_post(&configuration, &authorization, request).await
                },
            )
            .await?;
        let secret = parse_created(&body).map_err(|r| invalid(SessionCall::CreateSso, r))?;
        Ok(SsoToken::new(secret))
    }

    async fn validate(&self, sso: &SsoToken) -> Result<SsoValidation, SessionError> {
        let call = SessionCall::Validate;
        let body = self
            .call(call, Some(sso), None, |c| async move {
                v1_api_sso_validate_get(&c).await
            })
            .await?;
        parse_validate(&body).map_err(|r| invalid(call, r))
    }

    async fn init(&self, sso: &SsoToken, compete: bool) -> Result<BrokerageStatus, SessionError> {
        let call = SessionCall::BrokerageInit;
        let request = BrokerageSessionInitRequest {
            publish: Some(true),
            compete: Some(compete),
        };
        let body = self
            .call(call, Some(sso), None, |c| async move {
                v1_api_iserver_auth_ssodh_init_post(&c, request).await
            })
            .await?;
        parse_brokerage(&body).map_err(|r| invalid(call, r))
    }

    async fn tickle(&self, sso: &SsoToken) -> Result<TickleStatus, SessionError> {
        let call = SessionCall::Tickle;
        let body = self
            .call(call, Some(sso), None, |c| async move {
                v1_api_tickle_get(&c).await
            })
            .await?;
        parse_tickle(&body).map_err(|r| invalid(call, r))
    }

    async fn status(&self, sso: &SsoToken) -> Result<BrokerageStatus, SessionError> {
        let call = SessionCall::BrokerageStatus;
        let body = self
            .call(call, Some(sso), None, |c| async move {
                v1_api_iserver_auth_status_post(&c).await
            })
            .await?;
        parse_brokerage(&body).map_err(|r| invalid(call, r))
    }

    async fn logout(&self, sso: &SsoToken) -> Result<(), SessionError> {
        self.call(SessionCall::Logout, Some(sso), None, |c| async move {
            v1_api_logout_post(&c).await
        })
        .await
        .map(|_| ())
    }
}
