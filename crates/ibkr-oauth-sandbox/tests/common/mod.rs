//! Shared by the integration tests: test keys, assertion signing, a configured sandbox, and the
//! catalogue of refused requests with the exact `detail` each must get.
//! (Long on purpose: the catalogue of refused requests is one table.)
#![allow(dead_code, missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ibkr_oauth_sandbox::{Algorithm, RegisteredClient, RunningSandbox, Sandbox, SandboxBuilder};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

pub const CLIENT: &str = "test-client";
pub const LIMITED_CLIENT: &str = "limited-client";
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The DER inside a PEM block (test keys only; no pem crate feature needed).
pub fn der(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(b64).expect("fixture PEM is base64")
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A fresh `jti` for every call.
pub fn fresh_jti() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "jti-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A private key and the kid and algorithm it signs under.
pub struct Signer {
    pub kid: &'static str,
    pub alg: jsonwebtoken::Algorithm,
    pub key: EncodingKey,
}

impl Signer {
    pub fn rs256() -> Self {
        let key = EncodingKey::from_rsa_der(&der(&fixture("rsa_private.pem")));
        Self {
            kid: "rsa",
            alg: jsonwebtoken::Algorithm::RS256,
            key,
        }
    }
    pub fn ps256() -> Self {
        let key = EncodingKey::from_rsa_der(&der(&fixture("rsa_private.pem")));
        Self {
            kid: "pss",
            alg: jsonwebtoken::Algorithm::PS256,
            key,
        }
    }
    pub fn es256() -> Self {
        let key = EncodingKey::from_ec_der(&der(&fixture("ec_private.pem")));
        Self {
            kid: "ec",
            alg: jsonwebtoken::Algorithm::ES256,
            key,
        }
    }
    pub fn eddsa() -> Self {
        let key = EncodingKey::from_ed_der(&der(&fixture("ed25519_private.pem")));
        Self {
            kid: "ed",
            alg: jsonwebtoken::Algorithm::EdDSA,
            key,
        }
    }
    /// Ed25519 under the limited client's kid.
    pub fn limited() -> Self {
        Self {
            kid: "limited",
            ..Self::eddsa()
        }
    }
    /// The other RSA key, signing under kid `rsa`: a signature that does not verify.
    pub fn wrong_key() -> Self {
        let key = EncodingKey::from_rsa_der(&der(&fixture("rsa_other_private.pem")));
        Self {
            kid: "rsa",
            alg: jsonwebtoken::Algorithm::RS256,
            key,
        }
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.to_owned());
        self.sign_with(&header, claims)
    }

    pub fn sign_with(&self, header: &Header, claims: &Value) -> String {
        jsonwebtoken::encode(header, claims, &self.key).expect("test signing works")
    }
}

/// Claims as IBKR's clients send them, at time `now`, with a fresh `jti`.
pub fn claims_for(client: &str, now: i64) -> Value {
    json!({
        "iss": client,
        "sub": client,
        "aud": "/token",
        "iat": now - 10,
        "exp": now + 20,
        "jti": fresh_jti(),
    })
}

pub fn claims(now: i64) -> Value {
    claims_for(CLIENT, now)
}

/// `claims` with `changes` applied; a `null` removes the claim.
pub fn with(mut claims: Value, changes: Value) -> Value {
    if let (Some(map), Some(changes)) = (claims.as_object_mut(), changes.as_object()) {
        for (k, v) in changes {
            if v.is_null() {
                map.remove(k);
            } else {
                map.insert(k.clone(), v.clone());
            }
        }
    }
    claims
}

/// An unsigned token from raw parts (for malformed assertions).
pub fn raw_jws(header: &Value, claims: &Value, signature: &str) -> String {
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!("{}.{}.{signature}", enc(header), enc(claims))
}

/// The sandbox every test uses: `test-client` (any scope) with kids `rsa` (RS256), `pss`
/// (PS256), `ec` (ES256), `ed` (EdDSA); `limited-client` with kid `limited` (EdDSA), allowed
/// `echo.read echo.write`, default `echo.read`.
pub fn builder() -> SandboxBuilder {
    Sandbox::builder()
        .client(
            RegisteredClient::new(CLIENT)
                .key("rsa", fixture("rsa_public.pem"))
                .key_with_algorithm("pss", Algorithm::PS256, fixture("rsa_public.pem"))
                .key("ec", fixture("ec_public.pem"))
                .key("ed", fixture("ed25519_public.pem")),
        )
        .client(
            RegisteredClient::new(LIMITED_CLIENT)
                .key("limited", fixture("ed25519_public.pem"))
                .allowed_scopes(["echo.read", "echo.write"])
                .default_scopes(["echo.read"]),
        )
}

pub async fn sandbox() -> RunningSandbox {
    builder().start().await.expect("sandbox starts")
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent("sandbox-tests/1.0")
        .build()
        .expect("client builds")
}

/// The form of a well-formed token request.
pub fn form(assertion: &str, scope: Option<&str>) -> Vec<(String, String)> {
    let mut form = vec![
        ("grant_type".to_owned(), "client_credentials".to_owned()),
        ("client_assertion_type".to_owned(), JWT_BEARER.to_owned()),
        ("client_assertion".to_owned(), assertion.to_owned()),
    ];
    if let Some(scope) = scope {
        form.push(("scope".to_owned(), scope.to_owned()));
    }
    form
}

/// A request body as sent.
#[derive(Clone)]
pub enum Body {
    Form(Vec<(String, String)>),
    Raw {
        content_type: Option<&'static str>,
        bytes: Vec<u8>,
    },
}

impl Body {
    pub fn form(assertion: &str) -> Self {
        Self::Form(form(assertion, None))
    }
}

pub async fn send(
    http: &reqwest::Client,
    sandbox: &RunningSandbox,
    body: &Body,
) -> reqwest::Response {
    let request = http
        .post(sandbox.token_url())
        .header("accept", "application/json, application/problem+json");
    let request = match body {
        Body::Form(fields) => request.form(fields),
        Body::Raw {
            content_type,
            bytes,
        } => {
            let request = request.body(bytes.clone());
            match content_type {
                Some(ct) => request.header("content-type", *ct),
                None => request,
            }
        }
    };
    request.send().await.expect("the sandbox answers")
}

/// What a refused request's `detail` must be.
#[derive(Debug, Clone)]
pub enum Detail {
    Exact(String),
    /// For details that end with the sandbox's time, which can tick during the test.
    Prefix(String),
}

impl Detail {
    pub fn matches(&self, detail: &str) -> bool {
        match self {
            Self::Exact(expected) => detail == expected,
            Self::Prefix(prefix) => detail.starts_with(prefix),
        }
    }
}

pub struct Case {
    pub name: &'static str,
    pub body: Body,
    pub detail: Detail,
}

fn case(name: &'static str, body: Body, detail: impl Into<String>) -> Case {
    Case {
        name,
        body,
        detail: Detail::Exact(detail.into()),
    }
}

fn case_prefix(name: &'static str, body: Body, prefix: impl Into<String>) -> Case {
    Case {
        name,
        body,
        detail: Detail::Prefix(prefix.into()),
    }
}

/// Every refusal the sandbox makes on a single request (replay needs two: tested apart).
pub fn refusal_cases() -> Vec<Case> {
    let now = now();
    let rs = Signer::rs256();
    let good = || rs.sign(&claims(now));
    let signed = |changes: Value| rs.sign(&with(claims(now), changes));
    let fields = |pairs: &[(&str, &str)]| {
        Body::Form(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    };
    let a = good();
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "rsa"});
    let hs256 = {
        let key =
            EncodingKey::from_secret(b"a shared secret the sandbox never registered").unwrap();
        let mut h = Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = Some("rsa".into());
        jsonwebtoken::encode(&h, &claims(now), &key).unwrap()
    };
    let mut no_kid = Header::new(jsonwebtoken::Algorithm::RS256);
    no_kid.kid = None;
    let far = now + 10_000;
    let future_iat = now + 3_600;
    vec![
        case(
            "content type missing",
            Body::Raw {
                content_type: None,
                bytes: b"grant_type=client_credentials".to_vec(),
            },
            "content-type: missing; expected application/x-www-form-urlencoded",
        ),
        case(
            "content type json",
            Body::Raw {
                content_type: Some("application/json"),
                bytes: b"{}".to_vec(),
            },
            "content-type: \"application/json\" is not application/x-www-form-urlencoded",
        ),
        case(
            "grant_type missing",
            fields(&[
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &a),
            ]),
            "grant_type: missing",
        ),
        case(
            "grant_type wrong",
            fields(&[
                ("grant_type", "password"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &a),
            ]),
            "grant_type: \"password\" is not \"client_credentials\"",
        ),
        case(
            "grant_type twice",
            fields(&[
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &a),
            ]),
            "grant_type: given more than once",
        ),
        case(
            "client_assertion_type missing",
            fields(&[
                ("grant_type", "client_credentials"),
                ("client_assertion", &a),
            ]),
            "client_assertion_type: missing",
        ),
        case(
            "client_assertion_type wrong",
            fields(&[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", "urn:x"),
                ("client_assertion", &a),
            ]),
            "client_assertion_type: \"urn:x\" is not \"urn:ietf:params:oauth:client-assertion-type:jwt-bearer\"",
        ),
        case(
            "client_assertion missing",
            fields(&[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
            ]),
            "client_assertion: missing",
        ),
        case(
            "scope too short",
            Body::Form(form(&a, Some("abc"))),
            "scope: must be 4 to 1024 characters, got 3",
        ),
        case(
            "scope too long",
            Body::Form(form(&a, Some(&"s".repeat(1025)))),
            "scope: must be 4 to 1024 characters, got 1025",
        ),
        case(
            "scope not space-delimited tokens",
            Body::Form(form(&a, Some("echo.read  echo.write"))),
            "scope: \"echo.read  echo.write\" is not a space-delimited list of scope tokens (RFC 6749 section 3.3)",
        ),
        case(
            "assertion not a JWS",
            Body::form("not-a-jwt"),
            "client_assertion: not a compact JWS (expected three base64url parts separated by dots)",
        ),
        case(
            "assertion header not base64 JSON",
            Body::form("%%%.e30.c2ln"),
            "client_assertion: header is not a base64url-encoded JSON object",
        ),
        case(
            "assertion header without alg",
            Body::form(&raw_jws(&json!({"kid": "rsa"}), &claims(now), "c2ln")),
            "client_assertion: header has no \"alg\" string",
        ),
        case(
            "assertion header without kid",
            Body::form(&rs.sign_with(&no_kid, &claims(now))),
            "client_assertion: header has no \"kid\" string",
        ),
        case(
            "unknown kid",
            Body::form(&raw_jws(
                &json!({"alg": "RS256", "kid": "nope"}),
                &claims(now),
                "c2ln",
            )),
            "client_assertion: unknown kid \"nope\"",
        ),
        case(
            "algorithm not allowed for the key (HS256)",
            Body::form(&hs256),
            "client_assertion: alg \"HS256\" is not allowed for kid \"rsa\" (registered for RS256)",
        ),
        case(
            "algorithm none",
            Body::form(&raw_jws(
                &json!({"alg": "none", "kid": "rsa"}),
                &claims(now),
                "",
            )),
            "client_assertion: alg \"none\" is not allowed for kid \"rsa\" (registered for RS256)",
        ),
        case(
            "claims not base64 JSON",
            Body::form(&format!(
                "{}.%%%.c2ln",
                URL_SAFE_NO_PAD.encode(header.to_string())
            )),
            "client_assertion: claims are not a base64url-encoded JSON object",
        ),
        case(
            "signature by another key",
            Body::form(&Signer::wrong_key().sign(&claims(now))),
            "client_assertion: signature does not verify with the public key of kid \"rsa\"",
        ),
        case(
            "signature not base64",
            Body::form(&raw_jws(&header, &claims(now), "%%%")),
            "client_assertion: signature is not base64url",
        ),
        case(
            "iss wrong",
            Body::form(&signed(json!({"iss": "someone-else"}))),
            "client_assertion: iss \"someone-else\" is not the registered client id",
        ),
        case(
            "iss missing",
            Body::form(&signed(json!({"iss": null}))),
            "client_assertion: iss missing or not a string",
        ),
        case(
            "sub wrong",
            Body::form(&signed(json!({"sub": "someone-else"}))),
            "client_assertion: sub \"someone-else\" is not the registered client id",
        ),
        case(
            "aud wrong",
            Body::form(&signed(
                json!({"aud": "https://api.ibkr.com/oauth2/api/v1/token"}),
            )),
            "client_assertion: aud \"https://api.ibkr.com/oauth2/api/v1/token\" is not the expected audience \"/token\"",
        ),
        case(
            "aud array without the audience",
            Body::form(&signed(json!({"aud": ["a", "b"]}))),
            "client_assertion: aud does not contain the expected audience \"/token\"",
        ),
        case(
            "aud missing",
            Body::form(&signed(json!({"aud": null}))),
            "client_assertion: aud missing or not a string",
        ),
        case(
            "exp missing",
            Body::form(&signed(json!({"exp": null}))),
            "client_assertion: exp missing or not a number",
        ),
        case(
            "exp not a number",
            Body::form(&signed(json!({"exp": "soon"}))),
            "client_assertion: exp missing or not a number",
        ),
        case_prefix(
            "exp in the past",
            Body::form(&signed(json!({"exp": 1000}))),
            "client_assertion: exp 1000 is in the past (sandbox time ",
        ),
        case_prefix(
            "exp too far ahead",
            Body::form(&signed(json!({"exp": far}))),
            format!("client_assertion: exp {far} is more than 300 seconds after the sandbox time "),
        ),
        case(
            "iat missing",
            Body::form(&signed(json!({"iat": null}))),
            "client_assertion: iat missing or not a number",
        ),
        case_prefix(
            "iat in the future",
            Body::form(&signed(json!({"iat": future_iat}))),
            format!(
                "client_assertion: iat {future_iat} is in the future by more than 60 seconds (sandbox time "
            ),
        ),
        case_prefix(
            "nbf in the future",
            Body::form(&signed(json!({"nbf": future_iat}))),
            format!(
                "client_assertion: nbf {future_iat} is in the future by more than 60 seconds (sandbox time "
            ),
        ),
        case(
            "jti missing",
            Body::form(&signed(json!({"jti": null}))),
            "client_assertion: jti missing or not a non-empty string",
        ),
        case(
            "jti empty",
            Body::form(&signed(json!({"jti": ""}))),
            "client_assertion: jti missing or not a non-empty string",
        ),
        case(
            "scope not allowed for the client",
            Body::Form(form(
                &Signer::limited().sign(&claims_for(LIMITED_CLIENT, now)),
                Some("echo.read sso-sessions.write"),
            )),
            "scope: \"sso-sessions.write\" is not allowed for client \"limited-client\"",
        ),
        case(
            "body over the size limit",
            Body::Raw {
                content_type: Some("application/x-www-form-urlencoded"),
                bytes: format!("scope={}", "a".repeat(70_000)).into_bytes(),
            },
            "request body: 70006 bytes is more than the 65536-byte limit",
        ),
    ]
}
