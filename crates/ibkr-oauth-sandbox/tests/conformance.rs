//! Every kind of response the sandbox produces (token endpoint and echo endpoints), checked
//! against `openapi.yaml`: the status is listed for the operation, the content type is the one the spec gives for that status, and
//! the body is valid against the referenced schema (`TokenResponse`, `ProblemDetailResponse`)
//! with no member the schema does not declare.
//!
//! Outside the spec, on purpose: `429` (fault injection; the spec lists no rate limiting), and
//! `404`/`405` (other paths and methods are not the operation). Both are still checked to be
//! `ProblemDetailResponse`s, so a client's problem parsing covers them.
//!
//! Formats are not asserted: the spec's `format: uri` on the problem's `type` would refuse
//! `/simple`, IBKR's own example, which RFC 9457 allows (a URI reference). The validator runs
//! as JSON Schema draft 4, the dialect OpenAPI 3.0 schemas derive from.

mod common;

use std::time::Duration;

use common::*;
use ibkr_oauth_sandbox::{Fault, RunningSandbox};
use serde_json::{Value, json};

const OPERATION_PATH: &str = "/oauth2/api/v1/token";
const ECHO_HTTPS: &str = "/gw/api/v1/echo/https";
const ECHO_SIGNED_JWT: &str = "/gw/api/v1/echo/signed-jwt";

struct Spec {
    doc: Value,
}

impl Spec {
    fn load() -> Self {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.yaml");
        let text = std::fs::read_to_string(path).expect("openapi.yaml at the workspace root");
        Self {
            doc: serde_norway::from_str(&text).expect("openapi.yaml is YAML"),
        }
    }

    fn operation(&self) -> &Value {
        self.operation_at(OPERATION_PATH, "post")
    }

    fn operation_at(&self, path: &str, method: &str) -> &Value {
        &self.doc["paths"][path][method]
    }

    fn listed_statuses(&self) -> Vec<String> {
        self.operation()["responses"]
            .as_object()
            .expect("responses")
            .keys()
            .cloned()
            .collect()
    }

    fn schema_named(&self, name: &str) -> &Value {
        &self.doc["components"]["schemas"][name]
    }

    /// Validates `instance` against `schema`, resolving `#/components/...` against the spec.
    fn validate(&self, schema: &Value, instance: &Value) -> Result<(), String> {
        let root = json!({ "allOf": [schema], "components": self.doc["components"] });
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .should_validate_formats(false)
            .build(&root)
            .map_err(|e| format!("the spec's schema does not compile: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| e.to_string())
            .collect();
        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
        // Beyond the schema (which allows extra members): the sandbox sends only declared ones.
        let resolved = self.resolve(schema);
        let declared = resolved["properties"]
            .as_object()
            .ok_or("schema without properties")?;
        if let Some(extra) = instance
            .as_object()
            .and_then(|o| o.keys().find(|k| !declared.contains_key(*k)))
        {
            return Err(format!("member {extra:?} is not declared by the schema"));
        }
        Ok(())
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
        {
            Some(name) => self.schema_named(name),
            None => schema,
        }
    }

    /// Checks one response of the token operation against the spec.
    fn check(&self, status: u16, content_type: Option<&str>, body: &Value) -> Result<(), String> {
        self.check_at(OPERATION_PATH, "post", status, content_type, body)
    }

    /// Checks one response of the operation at `path` and `method` against the spec.
    fn check_at(
        &self,
        path: &str,
        method: &str,
        status: u16,
        content_type: Option<&str>,
        body: &Value,
    ) -> Result<(), String> {
        let response = self.operation_at(path, method)["responses"]
            .get(status.to_string())
            .ok_or_else(|| format!("status {status} is not listed for the operation"))?;
        let content = response["content"]
            .as_object()
            .ok_or("response without content")?;
        let content_type = content_type.ok_or("no Content-Type")?;
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        let media = content.get(essence).ok_or_else(|| {
            format!(
                "content type {essence:?} is not the spec's {:?} for {status}",
                content.keys()
            )
        })?;
        self.validate(&media["schema"], body)
    }
}

struct Produced {
    label: String,
    status: u16,
    content_type: Option<String>,
    body: Value,
}

async fn produce(label: impl Into<String>, response: reqwest::Response) -> Produced {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = response.bytes().await.expect("a body");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e})"));
    Produced {
        label: label.into(),
        status,
        content_type,
        body,
    }
}

/// Makes the sandbox produce every response it can, tagged by what caused it.
async fn every_response(sandbox: &RunningSandbox) -> Vec<Produced> {
    let http = http();
    let mut produced = Vec::new();
    let with_scope = Body::Form(form(
        &Signer::rs256().sign(&claims(now())),
        Some("echo.read echo.write"),
    ));
    produced.push(produce("200 with scope", send(&http, sandbox, &with_scope).await).await);
    let without_scope = Body::form(&Signer::eddsa().sign(&claims(now())));
    produced.push(
        produce(
            "200 without scope",
            send(&http, sandbox, &without_scope).await,
        )
        .await,
    );
    for case in refusal_cases() {
        produced.push(
            produce(
                format!("400 {}", case.name),
                send(&http, sandbox, &case.body).await,
            )
            .await,
        );
    }
    produced.push(produce("400 replay", send(&http, sandbox, &with_scope).await).await);
    sandbox.inject_fault(Fault::ServerError, 1);
    produced.push(produce("500 injected", send(&http, sandbox, &Body::form("x")).await).await);
    produced
}

#[tokio::test]
async fn every_response_conforms_to_the_spec() {
    let spec = Spec::load();
    let sandbox = sandbox().await;
    let produced = every_response(&sandbox).await;
    let mut statuses: Vec<u16> = produced.iter().map(|p| p.status).collect();
    statuses.dedup();
    assert_eq!(
        statuses,
        [200, 400, 500],
        "each status the spec lists is produced, in order"
    );
    assert_eq!(
        produced.iter().filter(|p| p.status == 400).count(),
        refusal_cases().len() + 1
    );
    let mut failures = Vec::new();
    for p in &produced {
        if let Err(why) = spec.check(p.status, p.content_type.as_deref(), &p.body) {
            failures.push(format!("{}: {why}\n  body: {}", p.label, p.body));
        }
    }
    assert!(
        failures.is_empty(),
        "non-conforming responses:\n{}",
        failures.join("\n")
    );
    // The spec lists exactly what the sandbox produces for the operation.
    assert_eq!(spec.listed_statuses(), ["200", "400", "500"]);
}

#[tokio::test]
async fn responses_outside_the_spec_are_still_problems() {
    let spec = Spec::load();
    let sandbox = sandbox().await;
    let http = http();
    sandbox.inject_fault(
        Fault::TooManyRequests {
            retry_after: Duration::from_secs(3),
        },
        1,
    );
    let outside = vec![
        produce(
            "429 injected",
            send(&http, &sandbox, &Body::form("x")).await,
        )
        .await,
        produce("405", http.get(sandbox.token_url()).send().await.unwrap()).await,
        produce(
            "404",
            http.post(format!("{}/nope", sandbox.base_url()))
                .send()
                .await
                .unwrap(),
        )
        .await,
    ];
    let problem_schema = json!({"$ref": "#/components/schemas/ProblemDetailResponse"});
    for p in outside {
        assert!(
            spec.check(p.status, p.content_type.as_deref(), &p.body)
                .unwrap_err()
                .contains("is not listed"),
            "{} is documented as outside the spec",
            p.label
        );
        assert_eq!(
            p.content_type.as_deref(),
            Some("application/problem+json"),
            "{}",
            p.label
        );
        spec.validate(&problem_schema, &p.body)
            .unwrap_or_else(|why| panic!("{}: {why}", p.label));
        assert_eq!(p.body["status"], p.status, "{}", p.label);
    }
}

/// The checks above are only as good as the validator: it must accept the spec's own examples
/// and refuse what breaks the schemas.
#[test]
fn the_validator_is_not_vacuous() {
    let spec = Spec::load();
    let responses = &spec.operation()["responses"];
    for status in ["200", "400", "500"] {
        let (media_type, media) = responses[status]["content"]
            .as_object()
            .unwrap()
            .iter()
            .next()
            .unwrap();
        let example = &media["example"];
        spec.check(status.parse().unwrap(), Some(media_type), example)
            .unwrap_or_else(|why| panic!("the spec's {status} example: {why}"));
    }
    let wrong = [
        (200, "application/json", json!({"expires_in": "86399"})),
        (200, "application/json", json!({"access_token": 5})),
        (
            200,
            "application/json",
            json!({"token_type": "Bearer", "extra": 1}),
        ),
        (400, "application/problem+json", json!({"status": "400"})),
        (400, "application/problem+json", json!({"detail": ["x"]})),
        (400, "application/json", json!({"status": 400})),
        (200, "application/problem+json", json!({})),
        (201, "application/json", json!({})),
    ];
    for (status, content_type, body) in wrong {
        assert!(
            spec.check(status, Some(content_type), &body).is_err(),
            "{status} {content_type} {body} passed"
        );
    }
}

/// The echo endpoints: every answer in IBKR's list (200, 401, 403) has its schema
/// (`EchoResponse`, `InvalidAccessTokenResponse`, `InsufficientScopeResponse`); the sandbox's
/// own refusals of a signed body (400, 415) are outside the list and still problems.
#[tokio::test]
async fn echo_responses_conform_to_the_spec() {
    let spec = Spec::load();
    let sandbox = sandbox().await;
    let http = http();
    let token = |scope: &'static str| {
        let body = Body::Form(form(&Signer::rs256().sign(&claims(now())), Some(scope)));
        let (http, sandbox) = (&http, &sandbox);
        async move {
            let answer: Value = send(http, sandbox, &body).await.json().await.unwrap();
            answer["access_token"].as_str().unwrap().to_owned()
        }
    };
    let (both, other) = (
        token("echo.read echo.write").await,
        token("sso-sessions.write").await,
    );
    let signed = Signer::rs256().sign(&json!({"iss": CLIENT}));
    let get = |token: &str| {
        http.get(format!("{}?q=1", sandbox.echo_https_url()))
            .bearer_auth(token)
    };
    let post = |token: &str, content_type: &str, body: &str| {
        http.post(sandbox.echo_signed_jwt_url())
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body.to_owned())
    };
    let https = (ECHO_HTTPS, "get");
    let jwt = (ECHO_SIGNED_JWT, "post");
    let cases = [
        (https, get(&both), 200),
        (https, http.get(sandbox.echo_https_url()), 401),
        (https, get("junk"), 401),
        (https, get(&other), 403),
        (jwt, post(&both, "application/jwt", &signed), 200),
        (jwt, post("junk", "application/jwt", &signed), 401),
        (jwt, post(&other, "application/jwt", &signed), 403),
        (jwt, post(&both, "application/jwt", "x.y.z"), 400),
        (jwt, post(&both, "application/json", "{}"), 415),
    ];
    let problem_schema = json!({"$ref": "#/components/schemas/ProblemDetailResponse"});
    for ((path, method), request, status) in cases {
        let p = produce(
            format!("{method} {path} {status}"),
            request.send().await.unwrap(),
        )
        .await;
        assert_eq!(p.status, status, "{}", p.label);
        let checked = spec.check_at(path, method, p.status, p.content_type.as_deref(), &p.body);
        if status == 400 || status == 415 {
            assert!(
                checked.unwrap_err().contains("is not listed"),
                "{}",
                p.label
            );
            spec.validate(&problem_schema, &p.body)
                .unwrap_or_else(|why| panic!("{}: {why}", p.label));
        } else {
            checked.unwrap_or_else(|why| panic!("{}: {why}\n  body: {}", p.label, p.body));
        }
    }
    for (path, method) in [https, jwt] {
        let listed: Vec<&String> = spec.operation_at(path, method)["responses"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(listed, ["200", "401", "403", "500"], "{method} {path}");
    }
}
