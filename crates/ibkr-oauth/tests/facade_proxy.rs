//! Plain http is allowed only to loopback hosts, so that the assertion stays on this machine:
//! no proxy may carry it elsewhere, neither one from the environment nor one configured.

use ibkr_oauth::{ClientAssertion, TokenClient, TokenRequest};

#[tokio::test]
async fn a_plain_http_loopback_request_bypasses_any_proxy() {
    let mut server = mockito::Server::new_async().await;
    let mock = server
        .mock("POST", "/oauth2/api/v1/token")
        .with_header("content-type", "application/json")
        .with_body(r#"{"access_token":"t","token_type":"Bearer","expires_in":60}"#)
        .create_async()
        .await;
    // A proxy nobody listens on: a request that went through it would fail to connect.
    let proxied = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all("http://127.0.0.1:9").expect("proxy URL"));
    let client = TokenClient::builder()
        .base_url(server.url())
        .http_client_builder(proxied)
        .build()
        .expect("client");
    let request = TokenRequest::builder()
        .assertion(ClientAssertion::new("a.b.c"))
        .build()
        .expect("request");
    client
        .request_token(&request)
        .await
        .expect("sent straight to the loopback server, not to the proxy");
    mock.assert_async().await;
}
