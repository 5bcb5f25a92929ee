//! Client assertions (`private_key_jwt`) and jwt-bearer grant assertions
//! must carry a `jti`: it is their replay key, so assertions without one
//! would all share a single key (RFC 7523 §3). Each refusal has a positive
//! control: the very same claims with a `jti` are accepted.

use serde_json::{json, Value};

use crate::common::{backends, TestServer, ISSUER};
use crate::grants::{signer, JWT_BEARER};

const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// (status, error, error_description) of a response.
async fn refusal(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    let text = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
    (status, text("error"), text("error_description"))
}

#[tokio::test]
async fn a_client_assertion_without_jti_is_invalid_client() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let key = signer();
        let public = serde_json::to_value(key.key().public_jwk().unwrap()).unwrap();
        let c = s
            .register(json!({"client_name": "pkjwt", "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [public]}}))
            .await;
        let id = c["client_id"].as_str().unwrap().to_owned();
        let claims = json!({"iss": id, "sub": id, "aud": ISSUER, "exp": s.now() + 60});
        let post = |claims: &Value| {
            let jwt = key.sign(claims).unwrap();
            s.http
                .post(s.url("/token"))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                    ("client_assertion", jwt.as_str()),
                ])
                .send()
        };
        // Twice, so that a first acceptance cannot hide behind the replay
        // refusal of the second.
        for attempt in 1..=2 {
            let got = refusal(post(&claims).await.unwrap()).await;
            let want = (
                401,
                "invalid_client".to_owned(),
                "client assertion rejected: missing_claim".to_owned(),
            );
            assert_eq!(got, want, "{}: attempt {attempt}", b.name);
        }
        let mut with_jti = claims.clone();
        with_jti["jti"] = json!("a-1");
        let resp = post(&with_jti).await.unwrap();
        assert_eq!(resp.status(), 200, "{}: {:?}", b.name, resp.text().await);
        s.stop().await;
    }
}

#[tokio::test]
async fn a_grant_assertion_without_jti_is_invalid_grant() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let key = signer();
        let public = serde_json::to_value(key.key().public_jwk().unwrap()).unwrap();
        let (id, secret) = s
            .basic_client(json!({
                "grant_types": [JWT_BEARER],
                "jwks": {"keys": [public]},
            }))
            .await;
        let endpoint = format!("{ISSUER}/token");
        let claims = json!({"iss": id, "sub": "user-42", "aud": endpoint, "exp": s.now() + 60});
        let post = |claims: &Value| {
            let jwt = key.sign(claims).unwrap();
            let (id, secret, s) = (&id, &secret, &s);
            async move {
                s.token_basic(
                    id,
                    secret,
                    &[("grant_type", JWT_BEARER), ("assertion", &jwt)],
                )
                .await
            }
        };
        for attempt in 1..=2 {
            let got = refusal(post(&claims).await).await;
            let want = (
                400,
                "invalid_grant".to_owned(),
                "assertion rejected: missing_claim".to_owned(),
            );
            assert_eq!(got, want, "{}: attempt {attempt}", b.name);
        }
        let mut with_jti = claims.clone();
        with_jti["jti"] = json!("login-1");
        let resp = post(&with_jti).await;
        assert_eq!(resp.status(), 200, "{}: {:?}", b.name, resp.text().await);
        s.stop().await;
    }
}
