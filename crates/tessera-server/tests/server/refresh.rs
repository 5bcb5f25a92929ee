//! Refresh tokens end to end over HTTP: a refused refresh spends nothing
//! (RFC 6749 §6: the old token is retired only when a new one is issued),
//! and revoking a family, by `POST /revoke` of a refresh token or by reuse
//! detection, revokes every access token it issued and what was exchanged
//! from them (RFC 7009 §2.1, RFC 9700 §4.14.2).

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::common::{backends, oauth_error, TestServer};
use crate::grants::{login, refresh, refreshing_backend};
use crate::revoke::{claims, feed, introspect, revoke};
use crate::revoke_all::{active, exchanged};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

fn member(body: &Value, name: &str) -> String {
    body[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        .to_owned()
}

async fn refresh_with_scope(
    s: &TestServer,
    id: &str,
    secret: &str,
    token: &str,
    scope: &str,
) -> reqwest::Response {
    s.token_basic(
        id,
        secret,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("scope", scope),
        ],
    )
    .await
}

/// A refresh that succeeds: its body.
async fn refreshed(s: &TestServer, id: &str, secret: &str, token: &str) -> Value {
    let resp = refresh(s, id, secret, token).await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

async fn is_live(s: &TestServer, id: &str, secret: &str, refresh_token: &str) -> bool {
    introspect(s, id, secret, refresh_token).await["active"] == true
}

#[tokio::test]
async fn a_refresh_refused_for_its_scope_spends_nothing() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let (id, secret, key) = refreshing_backend(&s).await;
        let r1 = member(&login(&s, &id, &secret, &key).await, "refresh_token");

        // Wider than first granted: refused, and r1 is as it was.
        for scope in ["orders:read admin", "orders:delete"] {
            let resp = refresh_with_scope(&s, &id, &secret, &r1, scope).await;
            assert_eq!(
                oauth_error(resp).await,
                (400, "invalid_scope".into()),
                "{}: {scope}",
                b.name
            );
            assert!(is_live(&s, &id, &secret, &r1).await, "{}: spent", b.name);
        }
        // So the ordinary refresh that follows is not reuse: it rotates,
        // and the family lives on.
        let r2 = member(&refreshed(&s, &id, &secret, &r1).await, "refresh_token");
        let narrower = refresh_with_scope(&s, &id, &secret, &r2, "orders:read").await;
        let body: Value = narrower.json().await.unwrap();
        assert_eq!(body["scope"], "orders:read", "{}: {body}", b.name);
        let r3 = member(&body, "refresh_token");
        assert!(is_live(&s, &id, &secret, &r3).await, "{}", b.name);

        // Control: genuine reuse of a spent token still revokes the family.
        let resp = refresh(&s, &id, &secret, &r1).await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "invalid_grant".into()),
            "{}: reuse",
            b.name
        );
        assert!(!is_live(&s, &id, &secret, &r3).await, "{}", b.name);
        let resp = refresh(&s, &id, &secret, &r3).await;
        assert_eq!(oauth_error(resp).await, (400, "invalid_grant".into()));

        // A spent token replayed with a wider scope is reuse all the same:
        // the replay is caught before anything about the request.
        let q1 = member(&login(&s, &id, &secret, &key).await, "refresh_token");
        let q2 = member(&refreshed(&s, &id, &secret, &q1).await, "refresh_token");
        let resp = refresh_with_scope(&s, &id, &secret, &q1, "orders:read admin").await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "invalid_grant".into()),
            "{}: reuse with a wider scope",
            b.name
        );
        assert!(!is_live(&s, &id, &secret, &q2).await, "{}", b.name);
        s.stop().await;
    }
}

#[tokio::test]
async fn a_refresh_refused_by_the_size_budget_spends_nothing() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let (id, secret, key) = refreshing_backend(&s).await;
        let first = login(&s, &id, &secret, &key).await;
        let r1 = member(&first, "refresh_token");
        // A refresh's access token has the login's size (same claims, same
        // key): one byte over a budget lowered at a restart.
        let size = member(&first, "access_token").len();
        s.stop().await;
        let budget = (size - 1).to_string();
        let s = TestServer::start(&b, &[("TESSERA_TOKENS_SIZE_BUDGET", &budget)]).await;
        let resp = refresh(&s, &id, &secret, &r1).await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            (status.as_u16(), body["error"].as_str()),
            (400, Some("invalid_request")),
            "{}: {body}",
            b.name
        );
        assert!(
            member(&body, "error_description").contains(&format!("{budget}-byte budget")),
            "{body}"
        );
        assert!(is_live(&s, &id, &secret, &r1).await, "{}: spent", b.name);
        s.stop().await;

        // Back under the default budget, the same token refreshes.
        let s = TestServer::start(&b, &[]).await;
        let r2 = member(&refreshed(&s, &id, &secret, &r1).await, "refresh_token");
        assert!(is_live(&s, &id, &secret, &r2).await, "{}", b.name);
        // Control: now r1 is spent, and presenting it again is reuse.
        let resp = refresh(&s, &id, &secret, &r1).await;
        assert_eq!(oauth_error(resp).await, (400, "invalid_grant".into()));
        assert!(!is_live(&s, &id, &secret, &r2).await, "{}", b.name);
        s.stop().await;
    }
}

/// The jtis of the feed's entries after `since`.
async fn listed(s: &TestServer, since: i64) -> BTreeSet<String> {
    let f = feed(s, since).await;
    f["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["jti"].as_str().map(str::to_owned))
        .collect()
}

fn jtis(tokens: &[&String]) -> BTreeSet<String> {
    tokens.iter().map(|t| member(&claims(t), "jti")).collect()
}

#[tokio::test]
async fn revoking_a_family_revokes_every_access_token_it_issued() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let (id, secret, key) = refreshing_backend(&s).await;
        // A resource server: introspects the users' tokens, exchanges them.
        let rs = s
            .basic_client(json!({"grant_types": ["client_credentials", EXCHANGE],
                                 "introspection_audiences": ["orders-api"]}))
            .await;

        // (a) A family with a login and two refreshes: three access tokens,
        // and one exchanged from the second.
        let login_a = login(&s, &id, &secret, &key).await;
        let one = refreshed(&s, &id, &secret, &member(&login_a, "refresh_token")).await;
        let two = refreshed(&s, &id, &secret, &member(&one, "refresh_token")).await;
        let family_a = [
            member(&login_a, "access_token"),
            member(&one, "access_token"),
            member(&two, "access_token"),
        ];
        let exchanged_a = exchanged(&s, &rs, &family_a[1]).await;
        // Another family of the same user: the control.
        let other = member(&login(&s, &id, &secret, &key).await, "access_token");
        for t in family_a.iter().chain([&exchanged_a, &other]) {
            assert!(active(&s, &rs, t).await, "{}", b.name);
        }
        let seq = feed(&s, 0).await["seq"].as_i64().unwrap();

        let resp = revoke(
            &s,
            &id,
            &secret,
            &[("token", &member(&two, "refresh_token"))],
        )
        .await;
        assert_eq!(resp.status(), 200, "{}", b.name);
        for t in family_a.iter().chain([&exchanged_a]) {
            assert_eq!(
                introspect(&s, &rs.0, &rs.1, t).await,
                json!({"active": false}),
                "{}: {:?}",
                b.name,
                claims(t)
            );
            assert_eq!(
                introspect(&s, &id, &secret, t).await,
                json!({"active": false}),
                "{}: to its own client",
                b.name
            );
        }
        assert!(active(&s, &rs, &other).await, "{}: control", b.name);
        let mut expected = jtis(&family_a.iter().collect::<Vec<_>>());
        expected.insert(member(&claims(&exchanged_a), "jti"));
        assert_eq!(listed(&s, seq).await, expected, "{}", b.name);

        // (b) Reuse detection: a login, a refresh, then the spent token.
        let seq = feed(&s, 0).await["seq"].as_i64().unwrap();
        let login_c = login(&s, &id, &secret, &key).await;
        let spent = member(&login_c, "refresh_token");
        let next = refreshed(&s, &id, &secret, &spent).await;
        let family_c = [
            member(&login_c, "access_token"),
            member(&next, "access_token"),
        ];
        let exchanged_c = exchanged(&s, &rs, &family_c[0]).await;
        for t in family_c.iter().chain([&exchanged_c]) {
            assert!(active(&s, &rs, t).await, "{}", b.name);
        }
        let resp = refresh(&s, &id, &secret, &spent).await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "invalid_grant".into()),
            "{}: reuse",
            b.name
        );
        for t in family_c.iter().chain([&exchanged_c]) {
            assert!(!active(&s, &rs, t).await, "{}", b.name);
        }
        assert!(active(&s, &rs, &other).await, "{}: control", b.name);
        let mut expected = jtis(&family_c.iter().collect::<Vec<_>>());
        expected.insert(member(&claims(&exchanged_c), "jti"));
        assert_eq!(listed(&s, seq).await, expected, "{}", b.name);
        assert!(
            !listed(&s, 0)
                .await
                .contains(&member(&claims(&other), "jti")),
            "{}: the other family's token is not listed",
            b.name
        );
        s.stop().await;
    }
}

/// Within the reuse interval a retry gets the same successor and an access
/// token of its own: that one is the family's too.
#[tokio::test]
async fn a_retried_refresh_issues_an_access_token_of_the_family() {
    for b in backends().await {
        let s = TestServer::start(&b, &[("TESSERA_TOKENS_REFRESH_REUSE_INTERVAL", "5s")]).await;
        let (id, secret, key) = refreshing_backend(&s).await;
        let rs = s
            .basic_client(json!({"introspection_audiences": ["orders-api"]}))
            .await;
        let r1 = member(&login(&s, &id, &secret, &key).await, "refresh_token");
        let first = refreshed(&s, &id, &secret, &r1).await;
        let retry = refreshed(&s, &id, &secret, &r1).await;
        assert_eq!(first["refresh_token"], retry["refresh_token"], "{}", b.name);
        let tokens = [
            member(&first, "access_token"),
            member(&retry, "access_token"),
        ];
        assert_ne!(tokens[0], tokens[1]);
        for t in &tokens {
            assert!(active(&s, &rs, t).await, "{}", b.name);
        }
        let resp = revoke(
            &s,
            &id,
            &secret,
            &[("token", &member(&first, "refresh_token"))],
        )
        .await;
        assert_eq!(resp.status(), 200);
        for t in &tokens {
            assert!(!active(&s, &rs, t).await, "{}", b.name);
        }
        // A retry after the revocation issues nothing.
        let resp = refresh(&s, &id, &secret, &r1).await;
        assert_eq!(oauth_error(resp).await, (400, "invalid_grant".into()));
        s.stop().await;
    }
}

#[tokio::test]
async fn tokens_issued_are_counted_under_the_grant_used() {
    for b in backends().await {
        let s = TestServer::start(&b, &[crate::common::METRICS]).await;
        let (id, secret, key) = refreshing_backend(&s).await;
        let r1 = member(&login(&s, &id, &secret, &key).await, "refresh_token");
        let r2 = member(&refreshed(&s, &id, &secret, &r1).await, "refresh_token");
        refreshed(&s, &id, &secret, &r2).await;
        let metrics = s.metrics().await;
        for (grant, n) in [
            ("jwt_bearer", 1),
            ("refresh_token", 2),
            ("client_credentials", 0),
            ("token_exchange", 0),
        ] {
            let line =
                format!("tessera_tokens_issued_total{{grant=\"{grant}\",client=\"{id}\"}} {n}\n");
            assert!(metrics.contains(&line), "{}: {line}{metrics}", b.name);
        }
        s.stop().await;
    }
}
