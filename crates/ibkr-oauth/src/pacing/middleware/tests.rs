//! Unit tests of `middleware`.

use super::*;
use crate::pacing::{Governor, PacingError, PacingTable};

fn client(governor: &Arc<Governor>, base: &str) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(Paced::new(Arc::clone(governor) as Arc<dyn Pacer>, base).unwrap())
        .build()
}

#[tokio::test]
async fn over_the_limit_nothing_is_sent_and_a_429_pauses() {
    let mut server = mockito::Server::new_async().await;
    let tickle = server
        .mock("GET", "/v1/api/tickle")
        .with_body("{}")
        .expect(1)
        .create_async()
        .await;
    let snapshot = server
        .mock("GET", "/v1/api/iserver/marketdata/snapshot")
        .with_status(429)
        .with_header("retry-after", "120")
        .expect(1)
        .create_async()
        .await;
    let governor = Arc::new(Governor::new(PacingTable::ibkr().max_wait(Duration::ZERO)).unwrap());
    let api = client(&governor, &server.url());
    let url = |p: &str| format!("{}{p}", server.url());
    assert_eq!(
        api.get(url("/v1/api/tickle"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let refused = api.get(url("/v1/api/tickle")).send().await.unwrap_err();
    let reqwest_middleware::Error::Middleware(error) = refused else {
        panic!("expected a middleware error, got {refused:?}");
    };
    assert!(matches!(
        error.downcast_ref::<PacingError>(),
        Some(PacingError::OverLimit { endpoint, .. }) if endpoint == "/tickle"
    ));
    tickle.assert_async().await;

    let answered = api
        .get(url("/v1/api/iserver/marketdata/snapshot"))
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), 429);
    let paused = api
        .get(url("/v1/api/iserver/marketdata/snapshot"))
        .send()
        .await
        .unwrap_err();
    let reqwest_middleware::Error::Middleware(error) = paused else {
        panic!("expected a middleware error, got {paused:?}");
    };
    match error.downcast_ref::<PacingError>() {
        Some(PacingError::Paused { retry_after, .. }) => {
            assert!(*retry_after > Duration::from_secs(119));
        }
        other => panic!("expected Paused, got {other:?}"),
    }
    snapshot.assert_async().await;
}
