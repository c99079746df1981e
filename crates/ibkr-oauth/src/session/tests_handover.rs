//! Handing a session between processes ([`Session::adopt`], [`Session::release`], the fence)
//! against the scripted fake of IBKR's calls, under tokio's paused clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use secrecy::SecretString;

use super::tests::{Answer, Fake, Tokens, session, token_text, until, wait};
use super::*;

fn foreign(text: &str) -> SsoToken {
    SsoToken::new(SecretString::from(text.to_owned()))
}

#[tokio::test(start_paused = true)]
async fn adopting_a_live_session_opens_nothing_and_keeps_it_alive() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    let s = session(&fake, &tokens, true, Compete::AtOpen);
    let status = s.adopt(foreign("sso-of-the-old-owner")).await.unwrap();
    assert_eq!(status.state, SessionState::Brokerage);
    assert_eq!(fake.count("tickle"), 1, "checked with one tickle");
    assert_eq!(fake.count("create"), 0, "no new SSO session");
    assert_eq!(
        fake.count("init"),
        0,
        "its brokerage session is open: no ssodh/init"
    );
    let held = s.held_token().unwrap();
    assert_eq!(token_text(&held), "sso-of-the-old-owner");
    assert_eq!(
        token_text(&s.sso_token().await.unwrap()),
        "sso-of-the-old-owner"
    );
    // The keeper tickles it from now on.
    until(&fake, "tickle", 3).await;
    assert_eq!(fake.count("create"), 0);
}

#[tokio::test(start_paused = true)]
async fn adopting_an_ended_session_opens_a_new_one() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    fake.script("tickle", &[Answer::Status(401)]);
    let s = session(&fake, &tokens, true, Compete::AtOpen);
    let status = s.adopt(foreign("dead")).await.unwrap();
    assert_eq!(status.state, SessionState::Brokerage);
    assert_eq!(fake.count("create"), 1);
    assert_eq!(token_text(&s.held_token().unwrap()), "sso-1");
}

#[tokio::test(start_paused = true)]
async fn adopting_never_fights_a_competing_session_and_reopens_a_lost_bridge() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    fake.script("tickle", &[Answer::Competing]);
    let s = session(&fake, &tokens, true, Compete::AtOpen);
    assert_eq!(
        s.adopt(foreign("t")).await.unwrap().state,
        SessionState::Competing
    );
    assert_eq!(
        fake.count("init"),
        0,
        "a competing session is reported, not fought"
    );

    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    fake.script("tickle", &[Answer::NotAuthenticated]);
    let s = session(&fake, &tokens, true, Compete::AtOpen);
    assert_eq!(
        s.adopt(foreign("t")).await.unwrap().state,
        SessionState::Brokerage
    );
    assert_eq!(fake.count("create"), 0);
    assert_eq!(
        fake.count("init"),
        1,
        "the bridge nobody holds is opened again"
    );
}

#[tokio::test(start_paused = true)]
async fn adopting_while_ibkr_does_not_answer_keeps_the_token_stale() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    fake.script("tickle", &[Answer::Timeout]);
    let s = session(&fake, &tokens, true, Compete::AtOpen);
    let status = s.adopt(foreign("kept")).await.unwrap();
    assert!(status.stale, "{status}");
    assert_eq!(fake.count("create"), 0);
    assert_eq!(token_text(&s.held_token().unwrap()), "kept");
}

#[tokio::test(start_paused = true)]
async fn a_closed_fence_stops_the_keeper_and_every_opening() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    let s = session(&fake, &tokens, true, Compete::AtOpen);
    let allowed = Arc::new(AtomicBool::new(true));
    let gate = Arc::clone(&allowed);
    s.set_fence(Arc::new(move || gate.load(Ordering::SeqCst)));
    s.open().await.unwrap();
    until(&fake, "tickle", 2).await;
    // The lease is lost (or this process was paused past it): nothing more.
    allowed.store(false, Ordering::SeqCst);
    let before = fake.log.lock().unwrap().len();
    wait(10 * 60).await;
    assert_eq!(
        fake.log.lock().unwrap().len(),
        before,
        "no call at all while fenced"
    );
    let other = session(&fake, &tokens, true, Compete::AtOpen);
    let gate = Arc::clone(&allowed);
    other.set_fence(Arc::new(move || gate.load(Ordering::SeqCst)));
    let refused = other.open().await.unwrap_err();
    assert!(
        matches!(&refused, Error::Session(e) if matches!(**e, SessionError::Fenced)),
        "{refused:?}"
    );
    let refused = other.adopt(foreign("t")).await.unwrap_err();
    assert!(
        matches!(&refused, Error::Session(e) if matches!(**e, SessionError::Fenced)),
        "{refused:?}"
    );
    assert_eq!(fake.count("create"), 1, "only the first session's");
}

#[tokio::test(start_paused = true)]
async fn released_sessions_do_not_log_out() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    let s = session(&fake, &tokens, false, Compete::AtOpen);
    s.open().await.unwrap();
    s.release();
    assert_eq!(s.status().state, SessionState::Closed);
    assert!(s.held_token().is_none());
    let tickles = fake.count("tickle");
    drop(s);
    wait(10 * 60).await;
    assert_eq!(fake.count("logout"), 0, "another process goes on with it");
    assert_eq!(fake.count("tickle"), tickles, "the keeper stopped");
}

/// A fence that lets this process act `times` more times, then says no (the lease lost while
/// the session was on its way to IBKR: the IP lookup, the access token, the pacer).
fn fence_for(times: usize) -> handover::Fence {
    let left = Arc::new(std::sync::atomic::AtomicUsize::new(times));
    Arc::new(move || {
        left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    })
}

#[tokio::test(start_paused = true)]
async fn the_fence_is_asked_again_right_before_each_send() {
    // Allowed at the start of the opening, refused after the access token: nothing is sent.
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    let s = session(&fake, &tokens, true, Compete::AtOpen);
    s.set_fence(fence_for(1));
    let refused = s.open().await.unwrap_err();
    assert!(
        matches!(&refused, Error::Session(e) if matches!(**e, SessionError::Fenced)),
        "{refused:?}"
    );
    assert_eq!(fake.count("create"), 0, "no sso-sessions once fenced");

    // ssodh/init fails with a 500 and the fence closes before the compete: false retry.
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    fake.script("init", &[Answer::Status(500)]);
    let s = session(&fake, &tokens, true, Compete::AtOpen);
    s.set_fence(fence_for(3)); // the opening's two checks, the first init's
    let _ = s.open().await;
    assert_eq!(fake.count("create"), 1);
    assert_eq!(fake.count("init"), 1, "no retry once fenced");
}
