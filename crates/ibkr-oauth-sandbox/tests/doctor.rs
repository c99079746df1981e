//! The setups a setup checker (`ibkr-oauth doctor`) must tell apart, each refused with its own
//! problem detail and a request id to quote: a wrong kid, a key that is not registered, a
//! clock ten minutes off, a scope the client may not have.

mod common;

use common::*;
use serde_json::{Value, json};

/// The detail and the `x-request-id` of a refused token request.
async fn refused(sandbox: &ibkr_oauth_sandbox::RunningSandbox, body: &Body) -> (String, String) {
    let response = send(&http(), sandbox, body).await;
    assert_eq!(response.status(), 400);
    let id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("a request id")
        .to_owned();
    let problem: Value = response.json().await.unwrap();
    assert_eq!(sandbox.last_request().unwrap().request_id, id);
    (problem["detail"].as_str().unwrap().to_owned(), id)
}

#[tokio::test]
async fn each_setup_fault_has_its_own_detail() {
    let sandbox = sandbox().await;
    let n = now();

    // The registered key, under a kid that is not registered.
    let wrong_kid = Signer {
        kid: "main",
        ..Signer::rs256()
    };
    let (detail, _) = refused(&sandbox, &Body::form(&wrong_kid.sign(&claims(n)))).await;
    assert_eq!(detail, "client_assertion: unknown kid \"main\"");

    // The registered kid, signed by a key that is not registered.
    let (detail, _) = refused(&sandbox, &Body::form(&Signer::wrong_key().sign(&claims(n)))).await;
    assert_eq!(
        detail,
        "client_assertion: signature does not verify with the public key of kid \"rsa\""
    );

    // A scope the client may not have: refused, naming the scope (no partial grant).
    let limited = Signer::limited().sign(&claims_for(LIMITED_CLIENT, n));
    let body = Body::Form(form(&limited, Some("echo.read sso-sessions.write")));
    let (detail, _) = refused(&sandbox, &body).await;
    assert_eq!(
        detail,
        "scope: \"sso-sessions.write\" is not allowed for client \"limited-client\""
    );

    // The sandbox's clock ten minutes ahead: a fresh assertion has expired.
    sandbox.set_clock_offset(600);
    let (detail, _) = refused(&sandbox, &Body::form(&Signer::rs256().sign(&claims(n)))).await;
    assert!(
        detail.starts_with(&format!("client_assertion: exp {} is in the past", n + 20)),
        "{detail}"
    );
    // Ten minutes behind: the assertion expires too far ahead (its exp is checked before its
    // iat, which is in the future too).
    sandbox.set_clock_offset(-600);
    let (detail, _) = refused(&sandbox, &Body::form(&Signer::rs256().sign(&claims(n)))).await;
    assert!(
        detail.starts_with(&format!(
            "client_assertion: exp {} is more than 300 seconds after the sandbox time",
            n + 20
        )),
        "{detail}"
    );
}

#[tokio::test]
async fn a_signed_body_under_the_wrong_kid_names_the_kid_that_verifies() {
    // One client with two RSA keys: signed by the second, labelled with the first.
    let sandbox = ibkr_oauth_sandbox::Sandbox::builder()
        .client(
            ibkr_oauth_sandbox::RegisteredClient::new(CLIENT)
                .key("main", fixture("rsa_public.pem"))
                .key("next", fixture("rsa_other_public.pem")),
        )
        .start()
        .await
        .unwrap();
    let main = Signer {
        kid: "main",
        ..Signer::rs256()
    };
    let assertion = main.sign(&claims(now()));
    let answer: Value = send(
        &http(),
        &sandbox,
        &Body::Form(form(&assertion, Some("echo.write"))),
    )
    .await
    .json()
    .await
    .unwrap();
    let token = answer["access_token"].as_str().unwrap();
    let mislabelled = Signer {
        kid: "main",
        ..Signer::wrong_key()
    };
    let response = http()
        .post(sandbox.echo_signed_jwt_url())
        .bearer_auth(token)
        .header("content-type", "application/jwt")
        .body(mislabelled.sign(&json!({"iss": CLIENT})))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(
        problem["detail"],
        "signed body: signature does not verify with the public key of kid \"main\"; it \
         verifies with the key registered as kid \"next\""
    );
}

/// Hostile forms: each is a 400 problem naming the field, and the sandbox goes on answering.
#[tokio::test]
async fn hostile_forms_are_400_problems() {
    let sandbox = sandbox().await;
    let raw = |bytes: Vec<u8>| Body::Raw {
        content_type: Some("application/x-www-form-urlencoded"),
        bytes,
    };
    let good = format!(
        "grant_type=client_credentials&client_assertion_type={}&client_assertion=a.b.c",
        JWT_BEARER.replace(':', "%3A")
    );
    let cases = [
        (
            format!("{good}&scope=%ff%fe%fd"),
            "form: field \"scope\" is not valid UTF-8 once decoded",
        ),
        (
            format!("{good}&scope=echo.read%0d%0aX-Injected:%201"),
            "form: field \"scope\" contains a control character",
        ),
        (
            format!("{good}&scope=%00"),
            "form: field \"scope\" contains a control character",
        ),
        (
            format!("{good}&grant_type=client_credentials"),
            "grant_type: given more than once",
        ),
        (
            format!("{good}&scope={}", "a".repeat(20_000)),
            "form: field \"scope\" is longer than 16384 bytes",
        ),
        (
            format!("{good}{}", "&x=1".repeat(40)),
            "form: more than 32 fields",
        ),
        (
            format!("{good}&scope=50%"),
            "form: field \"scope\" has a `%` not followed by two hex digits",
        ),
    ];
    for (body, detail) in cases {
        let (got, _) = refused(&sandbox, &raw(body.into_bytes())).await;
        assert_eq!(got, detail);
    }
    let mut invalid_name = b"grant_type=client_credentials&".to_vec();
    invalid_name.extend_from_slice(&[0xff, 0xfe, b'=', b'1']);
    let (got, _) = refused(&sandbox, &raw(invalid_name)).await;
    assert_eq!(got, "form: a field name is not valid UTF-8 once decoded");
    // Still answering.
    let ok = send(
        &http(),
        &sandbox,
        &Body::form(&Signer::rs256().sign(&claims(now()))),
    )
    .await;
    assert_eq!(ok.status(), 200);
}
