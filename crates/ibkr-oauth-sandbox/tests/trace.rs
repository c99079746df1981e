//! One line per request: what it says, and that it never says a secret.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn one_line_per_request_with_its_id_client_kid_and_outcome_and_no_secret() {
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&lines);
    let sandbox = builder()
        .trace_requests_to(move |line| sink.lock().unwrap().push(line.to_owned()))
        .start()
        .await
        .unwrap();
    let http = http();

    let assertion = Signer::rs256().sign(&claims(now()));
    let response = send(
        &http,
        &sandbox,
        &Body::Form(form(&assertion, Some("echo.write"))),
    )
    .await;
    assert_eq!(response.status(), 200);
    let token: Value = response.json().await.unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();

    let signed_body = Signer::eddsa().sign(&json!({"iss": CLIENT}));
    let response = http
        .post(sandbox.echo_signed_jwt_url())
        .bearer_auth(&token)
        .header("content-type", "application/jwt")
        .body(signed_body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let wrong = Signer::wrong_key().sign(&claims(now()));
    let response = send(&http, &sandbox, &Body::form(&wrong)).await;
    assert_eq!(response.status(), 400);

    let lines = lines.lock().unwrap().clone();
    let requests = sandbox.requests();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    for (line, request) in lines.iter().zip(&requests) {
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.contains(&format!("request_id={} ", request.request_id)),
            "{line}"
        );
        assert!(line.contains(" ibkr-oauth-sandbox "), "{line}");
        assert!(line.contains("client=\"test-client\""), "{line}");
        // No secret, whole or in part: the assertions, the access token, the signed body and
        // their signatures.
        for secret in [&assertion, &token, &signed_body, &wrong] {
            let signature = secret.rsplit('.').next().unwrap();
            assert!(!line.contains(secret.as_str()), "{line}");
            assert!(!line.contains(signature), "{line}");
        }
    }
    let [token_line, echo_line, refused_line] = &lines[..] else {
        unreachable!()
    };
    assert!(
        token_line
            .contains("kid=\"rsa\" endpoint=token POST /oauth2/api/v1/token status=200 outcome=ok")
    );
    assert!(echo_line.contains(
        "kid=\"ed\" endpoint=echo/signed-jwt POST /gw/api/v1/echo/signed-jwt status=200 outcome=ok"
    ));
    assert!(refused_line.contains(
        "kid=\"rsa\" endpoint=token POST /oauth2/api/v1/token status=400 outcome=refused \
         detail=\"client_assertion: signature does not verify with the public key of kid \\\"rsa\\\"\""
    ), "{refused_line}");
    // The time first, as RFC 3339 in UTC.
    let time = token_line.split(' ').next().unwrap();
    assert!(
        time.len() == 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "{time}"
    );
}
