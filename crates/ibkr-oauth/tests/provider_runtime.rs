//! The provider outside a tokio runtime: refused with its own error, never a panic.

use ibkr_oauth::provider::TokenProvider;
use ibkr_oauth::{Algorithm, Error, PrivateKey, Signer, TokenClient};

fn provider() -> TokenProvider {
    let key = PrivateKey::generate(Algorithm::EdDSA).expect("key");
    let signer = Signer::builder("client", "main", key)
        .build()
        .expect("signer");
    let client = TokenClient::builder()
        .base_url("http://127.0.0.1:9")
        .build()
        .expect("client");
    TokenProvider::builder(client, signer)
        .build()
        .expect("provider")
}

#[test]
fn spawn_refresher_outside_a_runtime_is_no_runtime() {
    let error = provider().spawn_refresher().expect_err("no runtime here");
    assert!(matches!(error, Error::NoRuntime), "{error:?}");
}

#[test]
fn access_token_polled_outside_a_runtime_is_no_runtime() {
    // A minimal executor that is not tokio: poll the future to completion on this thread.
    let provider = provider();
    let mut future = std::pin::pin!(provider.access_token());
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    // Bounded: without a runtime nothing could ever wake it, so it must be ready at once.
    let result = (0..1000)
        .find_map(|_| match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(result) => Some(result),
            std::task::Poll::Pending => None,
        })
        .expect("ready without a runtime");
    let error = result.expect_err("no runtime to fetch on");
    assert!(matches!(error, Error::NoRuntime), "{error:?}");
}
