//! The JWT bearer grant (RFC 7523 §2.1): a trusted client's assertion
//! names a user, who gets an access token.

use serde_json::{json, Value};
use tessera_jose::{Algorithm, Signer, SigningKey};

use crate::common::{backends, oauth_error, verify, TestServer, ISSUER};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

fn signer() -> Signer {
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
