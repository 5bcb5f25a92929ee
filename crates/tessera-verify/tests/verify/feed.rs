//! Following a deny-list feed that misbehaves: pages that bring nothing
//! new do not make the follower spin, a feed that never ends does not keep
//! `follow` from returning (and it says it is not caught up), and a client
//! the authority does not let read the feed is told why. A feed paged with
//! `more` is read to its end at once, and a snapshot is applied without
//! dropping what the follower held.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tessera_testkit::{backends, eventually, TestServer};
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

/// Most requests a follower that does not spin sends in `window` (from
/// before `follow`): the catch-up (at most 2), then one after each pause of
/// 1 s, 2 s, 4 s... (the default idle backoff), plus one in flight at each
/// end. A spinning follower sends thousands a second.
fn most_requests(window: Duration) -> u64 {
    5 + u64::from((1 + window.as_secs()).ilog2())
}

/// The follower goes on following (a second request comes, however long
/// that takes on a loaded machine), and over a window of at least 2.5 s it
/// sends no more than [`most_requests`].
async fn does_not_spin(name: &str, count: &AtomicU64, window: Instant) {
    eventually(&format!("{name}: the follower keeps following"), || async {
        (count.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    let rest = Duration::from_millis(2500).saturating_sub(window.elapsed());
    tokio::time::sleep(rest).await;
    let (n, took) = (count.load(Ordering::SeqCst), window.elapsed());
    assert!(n <= most_requests(took), "{name}: {n} requests in {took:?}");
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
        let window = Instant::now();
        let list = DenyList::follow(&url, "tc_gw", "tcs_x", &FeedOptions::default())
            .await
            .unwrap();
        does_not_spin(name, &count, window).await;
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
    let window = Instant::now();
    let list = DenyList::follow(&url, "tc_gw", "tcs_x", &FeedOptions::default())
        .await
        .unwrap();
    assert!(!list.caught_up(), "a feed that lists nothing and says more");
    does_not_spin("seq only", &count, window).await;
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
    let window = Instant::now();
    let list = DenyList::follow(&url, "tc_gw", "tcs_x", &options)
        .await
        .unwrap();
    assert!(list.caught_up());
    does_not_spin("no long poll", &count, window).await;
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
    let list = DenyList::follow(&url, "tc_gw", "tcs_x", &options)
        .await
        .unwrap();
    assert!(!list.caught_up(), "it says it has not read to the end");
    // Read before the background task has run (nothing was awaited since):
    // the page budget ended the catch-up, not its time (that would have
    // ended it at any other count).
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
    // Its catch-up time ended it: not before, and long before the 10 s
    // default could have.
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(8),
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
    eventually("caught up", || async { list.caught_up().then_some(()) }).await;
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

/// Entries `since + 1 ..` of a feed of `total` jtis `j-1..`, at most
/// `limit`, as the authority pages them: the page's `seq` is the feed's
/// latest, and a full page says more.
fn page_of(since: i64, total: i64, limit: i64) -> Value {
    let last = (since + limit).min(total);
    let entries: Vec<Value> = (since + 1..=last)
        .map(|seq| json!({"seq": seq, "jti": format!("j-{seq}"), "exp": i64::MAX}))
        .collect();
    let more = i64::try_from(entries.len()).unwrap() == limit;
    json!({"seq": total, "more": more, "snapshot": false, "entries": entries})
}

/// Until `done`, for up to the testkit's patience.
async fn until(what: &str, done: impl Fn() -> bool) {
    eventually(what, || async { done().then_some(()) }).await;
}

#[tokio::test]
async fn a_follower_reads_more_pages_at_once_to_the_end_of_the_feed() {
    // A mass revoke of 2,050 tokens, 100 to a page. The catch-up in
    // `follow` stops after 3 pages; the background task must read the
    // other 18 without a pause (the pauses are a minute here), asking
    // after the last entry it read (the page's `seq` is the feed's latest).
    const TOTAL: i64 = 2050;
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let a = Arc::clone(&asked);
    let (url, _) = fake_feed(move |_, since| {
        a.lock().unwrap().push(since);
        Some(page_of(since, TOTAL, 100))
    })
    .await;
    let minute = Duration::from_secs(60);
    let options = FeedOptions {
        catch_up_pages: 3,
        idle_backoff: minute,
        error_backoff: minute,
        max_backoff: minute,
        ..FeedOptions::default()
    };
    let list = DenyList::follow(&url, "tc_gw", "tcs_x", &options)
        .await
        .unwrap();
    assert!(!list.caught_up(), "3 pages of 21");
    assert_eq!(list.len(), 300);
    until("caught up", || list.caught_up()).await;
    assert_eq!(list.seq(), TOTAL);
    assert_eq!(list.len(), usize::try_from(TOTAL).unwrap());
    for seq in 1..=TOTAL {
        let jti = format!("j-{seq}");
        let facts = TokenFacts {
            jti: Some(&jti),
            ..TokenFacts::default()
        };
        assert!(list.refuses(facts, 0), "{jti}");
    }
    // Each page once, each after the last entry of the one before.
    let asked = asked.lock().unwrap().clone();
    let expected: Vec<i64> = (0..=20).map(|p| p * 100).collect();
    assert_eq!(asked[..21], expected[..]);
    // Then the follower waits on the feed's end (a long poll, answered at
    // once here, then a minute's pause): nothing asked before it.
    assert!(
        asked[21..].iter().all(|s| *s == TOTAL),
        "{:?}",
        &asked[21..]
    );
}

#[tokio::test]
async fn a_snapshot_is_applied_and_keeps_what_the_follower_held() {
    // The follower reads j-1 and j-2, then falls behind the purge
    // horizon: the next page is a snapshot of every live entry newer than
    // what it asked for. The documented reading (denylist.rs `apply`):
    // nothing is cleared, what it held goes by its own `exp`.
    let (url, _) = fake_feed(|n, since| {
        Some(match (n, since) {
            (1, _) => json!({"seq": 2, "more": false, "snapshot": false, "entries": [
                {"seq": 1, "jti": "j-1", "exp": i64::MAX},
                {"seq": 2, "jti": "j-2", "exp": 1000},
            ]}),
            (_, s) if s < 10 => json!({"seq": 10, "more": false, "snapshot": true, "entries": [
                {"seq": 7, "jti": "j-7", "exp": i64::MAX},
                {"seq": 9, "jti": "j-9", "exp": i64::MAX},
            ]}),
            _ => json!({"seq": 10, "more": false, "snapshot": false, "entries": []}),
        })
    })
    .await;
    let list = DenyList::follow(&url, "tc_gw", "tcs_x", &FeedOptions::default())
        .await
        .unwrap();
    assert_eq!(list.seq(), 2);
    until("the snapshot read", || list.seq() == 10).await;
    assert!(list.caught_up());
    let refuses = |jti, now| {
        list.refuses(
            TokenFacts {
                jti: Some(jti),
                ..TokenFacts::default()
            },
            now,
        )
    };
    for jti in ["j-1", "j-7", "j-9"] {
        assert!(refuses(jti, 500), "{jti}");
    }
    // j-2 was purged by its exp (the follower purges at the present time,
    // long past 1000), not by the snapshot: j-1 stayed.
    assert!(!refuses("j-2", 500));
    assert_eq!(list.len(), 3);
}
