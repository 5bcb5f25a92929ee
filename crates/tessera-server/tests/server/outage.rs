//! The database goes away and comes back (issue 12, scenario 3): what
//! needs it answers a fast 503 `temporarily_unavailable` with
//! `Retry-After`, `/readyz` says so, client_credentials issuance (which
//! reads nothing from the database) goes on, and everything answers again
//! once the database is back, without a restart. PostgreSQL only: a
//! [`tessera_testkit::TcpProxy`] between the server and the database
//! refuses connections and closes open ones, as a stopped server does.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use tessera_testkit::eventually;

use crate::common::{backends, TestServer};
use crate::revoke::{feed, introspect};

/// How long a 503 may take: not a hang. The pool's acquire timeout is 1 s
/// (how fast in practice is a benchmark's question); a pool left at sqlx's
/// default would wait 30 s, and a hang forever. The rest is headroom for
/// two shared cores.
const FAST: Duration = Duration::from_secs(10);

/// A client's credentials and a token it was issued.
type Held<'a> = (&'a str, &'a str, &'a str);

/// The requests that need the database, by name, built fresh each time:
/// each client acts on its own token.
fn needs_the_database<'a>(
    s: &'a TestServer,
    jwt: Held<'a>,
    opaque: Held<'a>,
) -> Vec<(&'static str, reqwest::RequestBuilder)> {
    let form = |path: &str, (id, secret, token): Held<'_>| {
        s.http
            .post(s.url(path))
            .basic_auth(id, Some(secret))
            .form(&[("token", token.to_owned())])
    };
    vec![
        ("revoke a JWT", form("/revoke", jwt)),
        ("introspect an opaque token", form("/introspect", opaque)),
        (
            "list clients",
            s.http.get(s.url("/admin/clients")).bearer_auth(&s.admin),
        ),
        (
            "register a client",
            s.http
                .post(s.url("/admin/clients"))
                .bearer_auth(&s.admin)
                .json(&json!({"client_name": "during"})),
        ),
    ]
}

#[tokio::test]
async fn a_database_out_of_reach_is_a_fast_503_and_its_return_needs_no_restart() {
    let Some(pg) = backends().await.into_iter().find(|b| b.name == "postgres") else {
        eprintln!(
            "outage test skipped: it needs PostgreSQL, and TESSERA_TEST_DATABASE_URL is unset"
        );
        return;
    };
    let (b, proxy) = pg.behind_proxy().await;
    let s = TestServer::start(&b, &[]).await;
    let (id, secret) = s.basic_client(json!({"token_format": "opaque"})).await;
    let (jid, jsecret) = s.basic_client(json!({})).await;
    let opaque = s.token(&id, &secret).await;
    let jwt = s.token(&jid, &jsecret).await;
    assert_eq!(introspect(&s, &id, &secret, &opaque).await["active"], true);
    assert_eq!(ready(&s).await, 200);

    proxy.cut().await;
    for (what, req) in needs_the_database(&s, (&jid, &jsecret, &jwt), (&id, &secret, &opaque)) {
        let asked = Instant::now();
        let resp = req.send().await.unwrap();
        let took = asked.elapsed();
        assert_eq!(resp.status(), 503, "{what}");
        assert_eq!(resp.headers()["retry-after"], "1", "{what}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "temporarily_unavailable", "{what}");
        assert!(took < FAST, "{what} took {took:?}");
    }
    let asked = Instant::now();
    assert_eq!(ready(&s).await, 503);
    assert!(asked.elapsed() < FAST, "/readyz took {:?}", asked.elapsed());
    // What needs no database goes on: client_credentials JWTs, the JWKS.
    let during = s.token(&jid, &jsecret).await;
    let jwks = s.http.get(s.url("/.well-known/jwks.json")).send().await;
    assert_eq!(jwks.unwrap().status(), 200);

    proxy.restore();
    let s_ref = &s;
    eventually("ready once the database is back", || async {
        (ready(s_ref).await == 200).then_some(())
    })
    .await;
    for (what, req) in needs_the_database(&s, (&jid, &jsecret, &during), (&id, &secret, &opaque)) {
        let resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "{what}: {}", resp.status());
    }
    // The revocation answered 200 after the return is in the feed.
    let listed = feed(&s, 0).await["entries"].to_string();
    let jti = crate::revoke::claims(&during)["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(listed.contains(&jti), "{listed}");
    s.stop().await;
}

/// Connections killed while the database stays up (`pg_terminate_backend`,
/// a failover of a connection pooler): the pool tests an idle connection
/// before handing it out and replaces a dead one, so the next requests
/// succeed as if nothing happened.
#[tokio::test]
async fn killed_connections_are_replaced_unseen() {
    let Some(pg) = backends().await.into_iter().find(|b| b.name == "postgres") else {
        eprintln!(
            "outage test skipped: it needs PostgreSQL, and TESSERA_TEST_DATABASE_URL is unset"
        );
        return;
    };
    let (b, proxy) = pg.behind_proxy().await;
    let s = TestServer::start(&b, &[]).await;
    let (id, secret) = s.basic_client(json!({"token_format": "opaque"})).await;
    let (jid, jsecret) = s.basic_client(json!({})).await;
    let opaque = s.token(&id, &secret).await;
    let jwt = s.token(&jid, &jsecret).await;
    // Every open connection closed, new ones accepted at once.
    proxy.cut().await;
    proxy.restore();
    for (what, req) in needs_the_database(&s, (&jid, &jsecret, &jwt), (&id, &secret, &opaque)) {
        let resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "{what}: {}", resp.status());
    }
    assert_eq!(ready(&s).await, 200);
    s.stop().await;
}

async fn ready(s: &TestServer) -> u16 {
    let resp = s.http.get(s.url("/readyz")).send().await.unwrap();
    resp.status().as_u16()
}
