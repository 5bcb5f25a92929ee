//! Following a deny-list feed that misbehaves: pages that bring nothing
//! new do not make the follower spin, a feed that never ends does not keep
//! `follow` from returning (and it says it is not caught up), and a client
//! the authority does not let read the feed is told why.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tessera_testkit::{backends, TestServer};
use tessera_verify::{DenyList, FeedOptions, TokenFacts};

/// What a fake feed answers to its n-th request (from 1) after `since`.
type Pages = fn(u64, i64) -> Option<Value>;

/// A feed at `/revocations` answering `page(n, since)` to its n-th request
/// (from 1) at once, or never when it is None; the URL and the request
/// count.
async fn fake_feed(
    page: impl Fn(u64, i64) -> Option<Value> + Send + Sync + 'static,
) -> (String, Arc<AtomicU64>) {
    let count = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&count);
    let page = Arc::new(page);
    let app = axum::Router::new().route(
        "/revocations",
        axum::routing::get(
            move |axum::extract::Query(q): axum::extract::Query<
                std::collections::HashMap<String, String>,
            >| {
                let n = c.fetch_add(1, Ordering::SeqCst) + 1;
                let since = q.get("since").and_then(|s| s.parse().ok()).unwrap_or(0);
                let body = page(n, since);
                async move {
                    match body {
                        Some(body) => axum::Json(body),
                        None => std::future::pending().await,
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/revocations", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, count)
}

#[tokio::test]
async fn pages_that_bring_nothing_new_do_not_make_the_follower_spin() {
    // `more: true` with no entries (the case), and an empty answer
    // sent at once although the follower asked the feed to wait.
    let cases: [(&str, Pages); 2] = [
        ("more without entries", |_, _| {
            Some(json!({"seq": 5, "more": true, "snapshot": false, "entries": []}))
        }),
        ("empty at once", |_, _| {
            Some(json!({"seq": 0, "more": false, "snapshot": false, "entries": []}))
        }),
    ];
    for (name, page) in cases {
        let (url, count) = fake_feed(page).await;
        let list = DenyList::follow(&url, "tc_gw", "tcs_x", &FeedOptions::default())
            .await
            .unwrap();
        let window = Instant::now();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let n = count.load(Ordering::SeqCst);
        // Catch-up (at most 2), then pauses of 1 s, 2 s...: a spinning
        // follower would have sent thousands in the window.
        assert!(n <= 6, "{name}: {n} requests in {:?}", window.elapsed());
        assert!(n >= 2, "{name}: the follower kept following ({n})");
        drop(list);
    }
}

#[tokio::test]
async fn pages_that_only_move_the_sequence_number_do_not_make_the_follower_spin() {
    // `more: true` and no entries, with a `seq` one past what was asked for
    // each time: the list's number moves, but nothing is listed. The
    // authority never answers so (an empty page ends the feed).
    let (url, count) = fake_feed(|_, since| {
        Some(json!({"seq": since + 1, "more": true, "snapshot": false, "entries": []}))
    })
    .await;
    let list = DenyList::follow(&url, "tc_gw", "tcs_x", &FeedOptions::default())
        .await
        .unwrap();
    assert!(!list.caught_up(), "a feed that lists nothing and says more");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let n = count.load(Ordering::SeqCst);
    assert!(n <= 6, "{n} requests in 2.5 s");
    assert!(n >= 2, "the follower kept following ({n})");
    drop(list);
}

#[tokio::test]
async fn a_follower_without_a_long_poll_does_not_spin_on_an_idle_feed() {
    // `long_poll` 0: the authority answers every request at once, and an
    // idle feed brings nothing new each time.
    let (url, count) =
        fake_feed(|_, _| Some(json!({"seq": 0, "more": false, "snapshot": false, "entries": []})))
            .await;
    let options = FeedOptions {
        long_poll: Duration::ZERO,
        ..FeedOptions::default()
    };
    let list = DenyList::follow(&url, "tc_gw", "tcs_x", &options)
        .await
        .unwrap();
    assert!(list.caught_up());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let n = count.load(Ordering::SeqCst);
    assert!(n <= 6, "{n} requests in 2.5 s");
    assert!(n >= 2, "the follower kept following ({n})");
    drop(list);
}

#[tokio::test]
async fn a_feed_that_never_ends_does_not_keep_follow_from_returning() {
    // Every page has one new entry and says more is to come.
    let (url, count) = fake_feed(|_, since| {
        let seq = since + 1;
        Some(json!({"seq": seq, "more": true, "snapshot": false,
               "entries": [{"seq": seq, "jti": format!("j-{seq}"), "exp": i64::MAX}]}))
    })
    .await;
    let options = FeedOptions {
        catch_up_pages: 20,
        ..FeedOptions::default()
    };
    let started = Instant::now();
    let list = DenyList::follow(&url, "tc_gw", "tcs_x", &options)
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!list.caught_up(), "it says it has not read to the end");
    assert_eq!(
        count.load(Ordering::SeqCst),
        20,
        "stopped at the page budget"
    );
    // What it read is refused meanwhile.
    let facts = |jti| TokenFacts {
        jti: Some(jti),
        ..TokenFacts::default()
    };
    assert!(list.refuses(facts("j-1"), 0));
    assert!(list.refuses(facts("j-20"), 0));

    // A feed that never answers: follow returns at the catch-up time.
    let (url, _) = fake_feed(|_, _| None).await;
    let options = FeedOptions {
        catch_up_time: Duration::from_millis(300),
        ..FeedOptions::default()
    };
    let started = Instant::now();
    let list = DenyList::follow(&url, "tc_gw", "tcs_x", &options)
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(!list.caught_up());
}

#[tokio::test]
async fn a_feed_that_ends_is_caught_up_and_stays_followed() {
    // The first request hangs past the catch-up time; later ones answer.
    let (url, _) = fake_feed(|n, _| {
        (n > 1).then(|| {
            json!({"seq": 3, "more": false, "snapshot": false,
                   "entries": [{"seq": 3, "jti": "j-3", "exp": i64::MAX}]})
        })
    })
    .await;
    let options = FeedOptions {
        catch_up_time: Duration::from_millis(200),
        ..FeedOptions::default()
    };
    let list = DenyList::follow(&url, "tc_gw", "tcs_x", &options)
        .await
        .unwrap();
    assert!(!list.caught_up(), "the first read did not finish");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !list.caught_up() {
        assert!(Instant::now() < deadline, "never caught up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let facts = TokenFacts {
        jti: Some("j-3"),
        ..TokenFacts::default()
    };
    assert!(list.refuses(facts, 0));
}

#[tokio::test]
async fn only_a_client_registered_for_the_feed_can_follow_it() {
    for b in backends().await {
        let auth = TestServer::start_live(&b).await;
        let (id, secret) = auth.quickstart();
        // The quickstart client has no revocations:read.
        let e = DenyList::follow(
            &auth.url("/revocations"),
            id,
            secret,
            &FeedOptions::default(),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("403") && e.contains("revocations:read"), "{e}");
        assert!(!e.contains(secret), "no secret in the message");
        let e = DenyList::follow(
            &auth.url("/revocations"),
            id,
            "tcs_wrong",
            &FeedOptions::default(),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("401"), "{e}");

        // Positive control: a follower registered for it reads the feed.
        let token = auth.token(id, secret).await;
        let resp = auth
            .http
            .post(auth.url("/revoke"))
            .basic_auth(id, Some(secret))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let (id, secret) = auth.follower().await;
        let list = DenyList::follow(
            &auth.url("/revocations"),
            id,
            secret,
            &FeedOptions::default(),
        )
        .await
        .unwrap();
        assert!(list.caught_up());
        let claims = tessera_jose::decode_unverified(&token, 8192)
            .unwrap()
            .claims;
        assert!(list.refuses(TokenFacts::from_claims(&claims), 0));
        auth.stop().await;
    }
}
