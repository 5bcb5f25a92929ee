//! The JWT bearer grant (RFC 7523 §2.1): a trusted client's assertion
//! names a user, who gets an access token.

use serde_json::{json, Value};
use tessera_jose::{Algorithm, Signer, SigningKey};

use crate::common::{backends, oauth_error, verify, TestServer, ISSUER, METRICS};

pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

pub(crate) fn signer() -> Signer {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let kid = key.thumbprint();
    Signer::new(key.with_kid(kid))
}

async fn login_backend(s: &TestServer, key: &Signer) -> (String, String) {
    let public = serde_json::to_value(key.key().public_jwk().unwrap()).unwrap();
    s.basic_client(json!({
        "grant_types": ["client_credentials", JWT_BEARER],
        "jwks": {"keys": [public]},
        "assertion_claims": ["tenant_id", "email"],
        "audiences": ["orders-api"],
        "claims": {"tier": "gold"},
    }))
    .await
}

#[tokio::test]
async fn a_users_token_from_a_signed_assertion() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let key = signer();
        let (id, secret) = login_backend(&s, &key).await;
        let now = s.now();
        let endpoint = format!("{ISSUER}/token");
        let assertion = |claims: Value| key.sign(&claims).unwrap();
        let base = json!({"iss": id, "sub": "user-42", "aud": endpoint, "exp": now + 60, "jti": "login-1",
                          "tenant_id": "acme", "email": "u@example.com", "role": "admin"});
        let resp = s
            .token_basic(
                &id,
                &secret,
                &[
                    ("grant_type", JWT_BEARER),
                    ("assertion", &assertion(base.clone())),
                ],
            )
            .await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "{}: {body}", b.name);
        let claims = verify(
            body["access_token"].as_str().unwrap(),
            &s.jwks().await,
            "orders-api",
            now,
        )
        .unwrap();
        assert_eq!(claims["sub"], "user-42");
        assert_eq!(claims["client_id"], id.as_str());
        assert_eq!(claims["tenant_id"], "acme");
        assert_eq!(claims["email"], "u@example.com");
        assert_eq!(claims["tier"], "gold", "static claims still apply");
        assert!(
            claims.get("role").is_none(),
            "claims not in assertion_claims are dropped"
        );

        let with = |patch: Value| {
            let mut c = base.clone();
            c.as_object_mut()
                .unwrap()
                .extend(patch.as_object().unwrap().clone());
            c
        };
        let refusals = [
            ("replayed jti", assertion(base.clone())),
            ("no sub", {
                let mut c = with(json!({"jti": "r-1"}));
                c.as_object_mut().unwrap().remove("sub");
                assertion(c)
            }),
            (
                "wrong issuer",
                assertion(with(json!({"iss": "someone", "jti": "r-2"}))),
            ),
            (
                "wrong audience",
                assertion(with(json!({"aud": "https://elsewhere", "jti": "r-3"}))),
            ),
            (
                "expired",
                assertion(with(json!({"exp": now - 3600, "jti": "r-4"}))),
            ),
            (
                "too far ahead",
                assertion(with(json!({"exp": now + 86_400, "jti": "r-5"}))),
            ),
            (
                "card number passed on",
                assertion(with(
                    json!({"tenant_id": "4111 1111 1111 1111", "jti": "r-6"}),
                )),
            ),
            (
                "signed by another key",
                signer().sign(&with(json!({"jti": "r-7"}))).unwrap(),
            ),
        ];
        for (what, a) in refusals {
            let resp = s
                .token_basic(
                    &id,
                    &secret,
                    &[("grant_type", JWT_BEARER), ("assertion", &a)],
                )
                .await;
            assert_eq!(
                oauth_error(resp).await,
                (400, "invalid_grant".into()),
                "{}: {what}",
                b.name
            );
        }
        let resp = s
            .token_basic(&id, &secret, &[("grant_type", JWT_BEARER)])
            .await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "invalid_request".into()),
            "no assertion"
        );

        // A client not registered for the grant.
        let (plain, plain_secret) = s.basic_client(json!({})).await;
        let resp = s
            .token_basic(
                &plain,
                &plain_secret,
                &[("grant_type", JWT_BEARER), ("assertion", "x.y.z")],
            )
            .await;
        assert_eq!(oauth_error(resp).await, (400, "unauthorized_client".into()));
        s.stop().await;
    }
}

#[tokio::test]
async fn registration_rules_of_the_grant() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let public = serde_json::to_value(signer().key().public_jwk().unwrap()).unwrap();
        for (body, member) in [
            (
                json!({"client_name": "x", "grant_types": [JWT_BEARER]}),
                "jwks",
            ),
            (
                json!({"client_name": "x", "grant_types": [JWT_BEARER], "jwks": {"keys": [public]}, "assertion_claims": ["sub"]}),
                "assertion_claims",
            ),
            (
                json!({"client_name": "x", "grant_types": [JWT_BEARER], "jwks": {"keys": [public]}, "assertion_claims": ["password"]}),
                "assertion_claims",
            ),
        ] {
            let resp = s.admin_post("/admin/clients", body.clone()).await;
            let status = resp.status();
            let err: Value = resp.json().await.unwrap();
            assert_eq!(status, 400, "{}: {body}", b.name);
            assert!(
                err["error_description"].as_str().unwrap().contains(member),
                "{err}"
            );
        }
        s.stop().await;
    }
}

/// A login backend that may refresh; returns (id, secret, key).
pub(crate) async fn refreshing_backend(s: &TestServer) -> (String, String, Signer) {
    let key = signer();
    let public = serde_json::to_value(key.key().public_jwk().unwrap()).unwrap();
    let (id, secret) = s
        .basic_client(json!({
            "grant_types": [JWT_BEARER, "refresh_token"],
            "jwks": {"keys": [public]},
            "assertion_claims": ["tenant_id"],
            "audiences": ["orders-api"],
            "scope": "orders:read orders:write",
        }))
        .await;
    (id, secret, key)
}

static JTI: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Logs user-42 in; returns the token response.
pub(crate) async fn login(s: &TestServer, id: &str, secret: &str, key: &Signer) -> Value {
    let n = JTI.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let a = key
        .sign(&json!({"iss": id, "sub": "user-42", "aud": format!("{ISSUER}/token"), "exp": s.now() + 60,
                      "jti": format!("login-{n}"), "tenant_id": "acme"}))
        .unwrap();
    let resp = s
        .token_basic(id, secret, &[("grant_type", JWT_BEARER), ("assertion", &a)])
        .await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

pub(crate) async fn refresh(
    s: &TestServer,
    id: &str,
    secret: &str,
    token: &str,
) -> reqwest::Response {
    s.token_basic(
        id,
        secret,
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    for b in backends().await {
        let s = TestServer::start(&b, &[METRICS]).await;
        let (id, secret, key) = refreshing_backend(&s).await;
        let first = login(&s, &id, &secret, &key).await;
        let r1 = first["refresh_token"].as_str().unwrap().to_owned();
        assert!(r1.starts_with("tsr_") && r1.len() >= 47, "{r1}");

        let resp = refresh(&s, &id, &secret, &r1).await;
        assert_eq!(resp.status(), 200, "{}", b.name);
        let second: Value = resp.json().await.unwrap();
        let r2 = second["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(r1, r2, "every use rotates");
        let claims = verify(
            second["access_token"].as_str().unwrap(),
            &s.jwks().await,
            "orders-api",
            s.now(),
        )
        .unwrap();
        assert_eq!(
            (claims["sub"].as_str(), claims["tenant_id"].as_str()),
            (Some("user-42"), Some("acme"))
        );
        assert_eq!(claims["scope"], "orders:read orders:write");

        // Narrower scope on refresh: yes; wider: no.
        let resp = s
            .token_basic(
                &id,
                &secret,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &r2),
                    ("scope", "orders:read admin"),
                ],
            )
            .await;
        assert_eq!(oauth_error(resp).await, (400, "invalid_scope".into()));

        // r1 again: reuse. The family dies, r2 with it.
        let resp = refresh(&s, &id, &secret, &r1).await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "invalid_grant".into()),
            "{}: reuse",
            b.name
        );
        let resp = refresh(&s, &id, &secret, &r2).await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "invalid_grant".into()),
            "{}: family revoked",
            b.name
        );
        let metrics = s.metrics().await;
        assert!(
            metrics.contains("tessera_refresh_token_reuse_total 1"),
            "{metrics}"
        );

        // Another client cannot use this user's token; an unknown one is refused.
        let other = login(&s, &id, &secret, &key).await["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let (thief, thief_secret, _) = refreshing_backend(&s).await;
        let resp = refresh(&s, &thief, &thief_secret, &other).await;
        assert_eq!(oauth_error(resp).await, (400, "invalid_grant".into()));
        let resp = refresh(&s, &id, &secret, "tsr_unknown").await;
        assert_eq!(oauth_error(resp).await, (400, "invalid_grant".into()));
        // The foreign attempt did not harm the owner's family.
        assert_eq!(refresh(&s, &id, &secret, &other).await.status(), 200);

        // Revoking a refresh token revokes its family.
        let fresh = login(&s, &id, &secret, &key).await["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let next: Value = refresh(&s, &id, &secret, &fresh)
            .await
            .json()
            .await
            .unwrap();
        let next = next["refresh_token"].as_str().unwrap().to_owned();
        let resp = s
            .http
            .post(s.url("/revoke"))
            .basic_auth(&id, Some(&secret))
            .form(&[("token", fresh.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let resp = refresh(&s, &id, &secret, &next).await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "invalid_grant".into()),
            "{}: revoked family",
            b.name
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn refresh_tokens_expire_when_idle_and_after_seven_days() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let (id, secret, key) = refreshing_backend(&s).await;
        // Idle: unused for over 3 days.
        let idle = login(&s, &id, &secret, &key).await["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        // Active: used every day.
        let mut active = login(&s, &id, &secret, &key).await["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        for day in 1..=6 {
            s.advance(std::time::Duration::from_secs(86_400)).await;
            let resp = refresh(&s, &id, &secret, &active).await;
            assert_eq!(resp.status(), 200, "{}: day {day}", b.name);
            active = resp.json::<Value>().await.unwrap()["refresh_token"]
                .as_str()
                .unwrap()
                .to_owned();
            if day == 4 {
                let resp = refresh(&s, &id, &secret, &idle).await;
                assert_eq!(
                    oauth_error(resp).await,
                    (400, "invalid_grant".into()),
                    "{}: idle token",
                    b.name
                );
            }
        }
        // Day 7 and a bit: the family's absolute lifetime is over.
        s.advance(std::time::Duration::from_secs(86_400 + 60)).await;
        let resp = refresh(&s, &id, &secret, &active).await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "invalid_grant".into()),
            "{}: absolute lifetime",
            b.name
        );
        s.stop().await;
    }
}

/// Introspection of refresh tokens (RFC 7662): active for its own client
/// until used, revoked or idle; never for anyone else.
#[tokio::test]
async fn refresh_tokens_introspect_as_active_until_used_revoked_or_idle() {
    use crate::revoke::introspect;
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let (id, secret, key) = refreshing_backend(&s).await;
        let (rs, rs_secret) = s
            .basic_client(json!({"introspection_audiences": ["orders-api"]}))
            .await;
        let r1 = login(&s, &id, &secret, &key).await["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let a = introspect(&s, &id, &secret, &r1).await;
        assert_eq!(
            (a["active"].as_bool(), a["token_type"].as_str()),
            (Some(true), Some("refresh_token")),
            "{}: {a}",
            b.name
        );
        assert_eq!(
            (
                a["sub"].as_str(),
                a["client_id"].as_str(),
                a["aud"].as_str()
            ),
            (Some("user-42"), Some(id.as_str()), Some("orders-api"))
        );
        assert_eq!(
            a["exp"],
            s.now() + 3 * 86_400,
            "the idle deadline comes first"
        );
        assert_eq!(a["scope"], "orders:read orders:write");
        assert_eq!(
            introspect(&s, &rs, &rs_secret, &r1).await,
            json!({"active": false}),
            "a resource server never holds one"
        );

        let r2 = refresh(&s, &id, &secret, &r1)
            .await
            .json::<Value>()
            .await
            .unwrap()["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            introspect(&s, &id, &secret, &r1).await,
            json!({"active": false}),
            "spent"
        );
        assert_eq!(introspect(&s, &id, &secret, &r2).await["active"], true);
        s.advance(std::time::Duration::from_secs(3 * 86_400 + 1))
            .await;
        assert_eq!(
            introspect(&s, &id, &secret, &r2).await,
            json!({"active": false}),
            "idle"
        );

        let r3 = login(&s, &id, &secret, &key).await["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(introspect(&s, &id, &secret, &r3).await["active"], true);
        let resp = s
            .http
            .post(s.url("/revoke"))
            .basic_auth(&id, Some(&secret))
            .form(&[("token", r3.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            introspect(&s, &id, &secret, &r3).await,
            json!({"active": false}),
            "revoked"
        );
        assert_eq!(
            introspect(&s, &id, &secret, "tsr_unknown").await,
            json!({"active": false})
        );
        s.stop().await;
    }
}

/// Many requests with the same refresh token at once: exactly one rotates.
#[tokio::test]
async fn concurrent_use_of_one_refresh_token_has_exactly_one_winner() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let (id, secret, key) = refreshing_backend(&s).await;
        let token = login(&s, &id, &secret, &key).await["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut calls = Vec::new();
        for _ in 0..16 {
            let (http, url, id, secret, token) = (
                s.http.clone(),
                s.url("/token"),
                id.clone(),
                secret.clone(),
                token.clone(),
            );
            calls.push(tokio::spawn(async move {
                http.post(url)
                    .basic_auth(id, Some(secret))
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", token.as_str()),
                    ])
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }));
        }
        let mut statuses = Vec::new();
        for c in calls {
            statuses.push(c.await.unwrap());
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "{}: {statuses:?}",
            b.name
        );
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 400),
            "{statuses:?}"
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn refresh_token_grant_rules_at_registration() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let resp = s
            .admin_post(
                "/admin/clients",
                json!({"client_name": "x", "grant_types": ["client_credentials", "refresh_token"]}),
            )
            .await;
        let status = resp.status();
        let err: Value = resp.json().await.unwrap();
        assert_eq!(status, 400, "{}", b.name);
        assert!(
            err["error_description"]
                .as_str()
                .unwrap()
                .contains("refresh_token"),
            "{err}"
        );
        // A client_credentials client gets no refresh token.
        let (id, secret) = s.basic_client(json!({})).await;
        let body: Value = s
            .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
            .await
            .json()
            .await
            .unwrap();
        assert!(body.get("refresh_token").is_none());
        s.stop().await;
    }
}

/// With a reuse interval, a client's concurrent retries get the same
/// successor; after the interval, reuse still revokes the family.
#[tokio::test]
async fn the_reuse_interval_gives_retries_the_same_answer() {
    for b in backends().await {
        let s = TestServer::start(&b, &[("TESSERA_TOKENS_REFRESH_REUSE_INTERVAL", "5s")]).await;
        let (id, secret, key) = refreshing_backend(&s).await;
        let token = login(&s, &id, &secret, &key).await["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut calls = Vec::new();
        for _ in 0..8 {
            let (http, url, id, secret, token) = (
                s.http.clone(),
                s.url("/token"),
                id.clone(),
                secret.clone(),
                token.clone(),
            );
            calls.push(tokio::spawn(async move {
                let resp = http
                    .post(url)
                    .basic_auth(id, Some(secret))
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", token.as_str()),
                    ])
                    .send()
                    .await
                    .unwrap();
                (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
            }));
        }
        let mut successors = std::collections::BTreeSet::new();
        for c in calls {
            let (status, body) = c.await.unwrap();
            assert_eq!(status, 200, "{}: {body}", b.name);
            successors.insert(body["refresh_token"].as_str().unwrap().to_owned());
        }
        assert_eq!(
            successors.len(),
            1,
            "{}: one successor for all retries",
            b.name
        );
        let successor = successors.into_iter().next().unwrap();
        // Past the interval the old token is reuse again: the family dies.
        s.advance(std::time::Duration::from_secs(6)).await;
        let resp = refresh(&s, &id, &secret, &token).await;
        assert_eq!(oauth_error(resp).await, (400, "invalid_grant".into()));
        let resp = refresh(&s, &id, &secret, &successor).await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "invalid_grant".into()),
            "{}: family revoked",
            b.name
        );
        s.stop().await;
    }
}

/// A login backend names users, never clients: a `sub` that is another
/// client's id (what that client's own tokens carry) or anything in the
/// client-id namespace is `invalid_grant`, and so is a federated subject's
/// form (`<prefix>|<sub>`), which belongs to the federations.
#[tokio::test]
async fn a_users_subject_is_never_a_client_id_or_a_federated_subject() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let key = signer();
        let (id, secret) = login_backend(&s, &key).await;
        let (victim, victim_secret) = s.basic_client(json!({"audiences": ["orders-api"]})).await;
        let victims_own = verify(
            &s.token(&victim, &victim_secret).await,
            &s.jwks().await,
            "orders-api",
            s.now(),
        )
        .unwrap();
        assert_eq!(victims_own["sub"], victim.as_str());
        let now = s.now();
        let login = |sub: &str, jti: &str| {
            let a = key
                .sign(&json!({"iss": id, "sub": sub, "aud": ISSUER, "exp": now + 60, "jti": jti}))
                .unwrap();
            let (id, secret) = (id.clone(), secret.clone());
            let s = &s;
            async move {
                s.token_basic(
                    &id,
                    &secret,
                    &[("grant_type", JWT_BEARER), ("assertion", &a)],
                )
                .await
            }
        };
        for (n, (sub, why)) in [
            (victim.as_str(), "client ids"),
            ("tc_not-yet-registered", "client ids"),
            (&victim.to_uppercase(), "client ids"),
            ("login.example.com|alice", "federated"),
        ]
        .into_iter()
        .enumerate()
        {
            let resp = login(sub, &format!("ns-{n}")).await;
            let status = resp.status();
            let body: Value = resp.json().await.unwrap();
            assert_eq!(
                (status.as_u16(), body["error"].as_str()),
                (400, Some("invalid_grant")),
                "{}: sub {sub}: {body}",
                b.name
            );
            assert!(
                body["error_description"].as_str().unwrap().contains(why),
                "{body}"
            );
        }
        // Control: a user's subject.
        let resp = login("user-42", "ns-ok").await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "{}: {body}", b.name);
        s.stop().await;
    }
}
