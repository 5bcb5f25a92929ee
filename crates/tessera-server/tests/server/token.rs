//! The token endpoint: client_credentials with each client authentication
//! method, RFC 9068 claims, and every RFC 6749 §5.2 error.

use serde_json::{json, Value};
use tessera_jose::{Algorithm, Signer, SigningKey};

use crate::common::{backends, oauth_error, verify, TestServer, ISSUER, METRICS};

#[tokio::test]
async fn basic_client_gets_an_rfc9068_token_with_its_claims() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let (id, secret) = s
            .basic_client(json!({"scope": "orders:read orders:write", "audiences": ["orders-api"], "claims": {"tenant_id": "acme"}, "access_token_ttl": 600}))
            .await;
        let resp = s
            .token_basic(
                &id,
                &secret,
                &[
                    ("grant_type", "client_credentials"),
                    ("scope", "orders:read"),
                ],
            )
            .await;
        assert_eq!(resp.status(), 200, "{}", b.name);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 600);
        assert_eq!(body["scope"], "orders:read");
        let token = body["access_token"].as_str().unwrap();
        let keys = s.jwks().await;
        let claims = verify(token, &keys, "orders-api", s.now()).unwrap();
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(claims["sub"], id.as_str());
        assert_eq!(claims["client_id"], id.as_str());
        assert_eq!(claims["aud"], "orders-api");
        assert_eq!(claims["scope"], "orders:read");
        assert_eq!(claims["tenant_id"], "acme");
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            600
        );
        assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
        let header = tessera_jose::decode_unverified(token, 8192).unwrap().header;
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["alg"], "ES256");
        assert!(header["kid"].is_string());

        // An empty parameter counts as omitted (RFC 6749 §3.2).
        let resp = s
            .token_basic(
                &id,
                &secret,
                &[
                    ("grant_type", "client_credentials"),
                    ("scope", ""),
                    ("audience", ""),
                    ("client_secret", ""),
                ],
            )
            .await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "{}: {body}", b.name);
        assert_eq!(body["scope"], "orders:read orders:write");
        // The Basic secret is decoded whole: nothing after '&' is dropped.
        let resp = s
            .token_basic(
                &id,
                &format!("{secret}&junk"),
                &[("grant_type", "client_credentials")],
            )
            .await;
        assert_eq!(oauth_error(resp).await, (401, "invalid_client".into()));
        // No scope asked: every allowed scope.
        let resp = s
            .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
            .await;
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["scope"], "orders:read orders:write");
        // Two jtis never repeat.
        let t1 = s.token(&id, &secret).await;
        let t2 = s.token(&id, &secret).await;
        let j1 = verify(&t1, &keys, "orders-api", s.now()).unwrap()["jti"].clone();
        let j2 = verify(&t2, &keys, "orders-api", s.now()).unwrap()["jti"].clone();
        assert_ne!(j1, j2);
        s.stop().await;
    }
}

#[tokio::test]
async fn client_secret_post_and_audience_selection() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let c = s
            .register(json!({"client_name": "post", "token_endpoint_auth_method": "client_secret_post", "audiences": ["a-api", "b-api"]}))
            .await;
        let id = c["client_id"].as_str().unwrap();
        let secret = c["client_secret"].as_str().unwrap();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ];
        let resp = s
            .http
            .post(s.url("/token"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{}", b.name);
        let token = resp.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let claims = verify(&token, &s.jwks().await, "b-api", s.now()).unwrap();
        assert_eq!(claims["aud"], json!(["a-api", "b-api"]));

        let mut narrowed = form.to_vec();
        narrowed.push(("audience", "a-api"));
        let resp = s
            .http
            .post(s.url("/token"))
            .form(&narrowed)
            .send()
            .await
            .unwrap();
        let token = resp.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let claims = verify(&token, &s.jwks().await, "a-api", s.now()).unwrap();
        assert_eq!(claims["aud"], "a-api");

        // A post client may not use Basic, even with its right secret.
        let resp = s
            .token_basic(id, secret, &[("grant_type", "client_credentials")])
            .await;
        assert_eq!(oauth_error(resp).await, (401, "invalid_client".into()));
        s.stop().await;
    }
}

#[tokio::test]
async fn every_rfc6749_error() {
    for b in backends().await {
        let s = TestServer::start(&b, &[METRICS]).await;
        let (id, secret) = s
            .basic_client(json!({"scope": "read", "audiences": ["api"]}))
            .await;
        let cc = [("grant_type", "client_credentials")];

        let resp = s.token_basic("tc_nobody", &secret, &cc).await;
        assert_eq!(
            resp.headers()["www-authenticate"],
            "Basic realm=\"tessera\""
        );
        assert_eq!(
            oauth_error(resp).await,
            (401, "invalid_client".into()),
            "unknown client"
        );
        let resp = s.token_basic(&id, "tcs_wrong", &cc).await;
        assert_eq!(
            oauth_error(resp).await,
            (401, "invalid_client".into()),
            "wrong secret"
        );
        let resp = s.http.post(s.url("/token")).form(&cc).send().await.unwrap();
        assert_eq!(
            oauth_error(resp).await,
            (401, "invalid_client".into()),
            "no authentication"
        );
        let resp = s
            .http
            .post(s.url("/token"))
            .header("authorization", "Basic !!!")
            .form(&cc)
            .send()
            .await
            .unwrap();
        assert_eq!(
            oauth_error(resp).await,
            (401, "invalid_client".into()),
            "garbage Basic"
        );

        let resp = s
            .token_basic(&id, &secret, &[("grant_type", "password")])
            .await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "unsupported_grant_type".into())
        );
        let resp = s.token_basic(&id, &secret, &[("scope", "read")]).await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "invalid_request".into()),
            "no grant_type"
        );
        let resp = s
            .token_basic(
                &id,
                &secret,
                &[
                    ("grant_type", "client_credentials"),
                    ("scope", "read write"),
                ],
            )
            .await;
        assert_eq!(oauth_error(resp).await, (400, "invalid_scope".into()));
        let resp = s
            .token_basic(
                &id,
                &secret,
                &[
                    ("grant_type", "client_credentials"),
                    ("audience", "other-api"),
                ],
            )
            .await;
        assert_eq!(oauth_error(resp).await, (400, "invalid_target".into()));
        let resp = s
            .http
            .post(s.url("/token"))
            .basic_auth(&id, Some(&secret))
            .header("content-type", "application/json")
            .body(r#"{"grant_type":"client_credentials"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(
            oauth_error(resp).await,
            (400, "invalid_request".into()),
            "JSON body"
        );
        let resp = s
            .http
            .post(s.url("/token"))
            .basic_auth(&id, Some(&secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        assert_eq!(
            oauth_error(resp).await,
            (400, "invalid_request".into()),
            "repeated parameter"
        );
        let resp = s
            .token_basic(
                &id,
                &secret,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", id.as_str()),
                    ("client_secret", secret.as_str()),
                ],
            )
            .await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "invalid_request".into()),
            "two methods"
        );
        let resp = s
            .http
            .post(s.url("/token"))
            .basic_auth(&id, Some(&secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=client_credentials&pad={}",
                "x".repeat(70_000)
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(
            oauth_error(resp).await,
            (413, "invalid_request".into()),
            "oversize body"
        );
        let resp = s.http.get(s.url("/token")).send().await.unwrap();
        assert_eq!(resp.headers()["allow"], "POST");
        assert_eq!(
            oauth_error(resp).await,
            (405, "invalid_request".into()),
            "GET /token"
        );

        let metrics = s.metrics().await;
        assert!(
            metrics.contains("tessera_token_errors_total{code=\"invalid_client\"} 4"),
            "{metrics}"
        );
        assert!(
            metrics.contains("tessera_token_errors_total{code=\"invalid_scope\"} 1"),
            "{metrics}"
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn a_token_over_the_size_budget_is_never_issued() {
    for b in backends().await {
        let s = TestServer::start(&b, &[("TESSERA_TOKENS_SIZE_BUDGET", "600")]).await;
        let (id, secret) = s
            .basic_client(json!({"claims": {"note": "x".repeat(400)}}))
            .await;
        let resp = s
            .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
            .await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 400, "{}", b.name);
        assert_eq!(body["error"], "invalid_request");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("600-byte budget"),
            "{body}"
        );
        assert!(
            !body.to_string().contains("eyJ"),
            "no token in the refusal: {body}"
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn a_client_with_sensitive_static_claims_gets_no_token() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        // Registration refuses such claims, so write the row directly, as a
        // careless migration or manual edit would.
        let (id, secret) = s.basic_client(json!({})).await;
        let state = &s.running;
        let row = state
            .store()
            .clients()
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.client_id == id)
            .unwrap();
        let mut metadata: Value = row.metadata.clone();
        metadata["claims"] = json!({"card": "4111 1111 1111 1111"});
        state.store().delete_client(&id).await.unwrap();
        state
            .store()
            .insert_client(&tessera_server::test_util::ClientRow { metadata, ..row })
            .await
            .unwrap();
        state.reload_clients().await.unwrap();
        let resp = s
            .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
            .await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            (status.as_u16(), body["error"].as_str()),
            (400, Some("invalid_request")),
            "{}",
            b.name
        );
        let text = body["error_description"].as_str().unwrap();
        assert!(
            text.contains("\"card\"") && !text.contains("4111"),
            "{text}"
        );
        s.stop().await;
    }
}

struct Assertion<'a> {
    key: &'a Signer,
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: Option<i64>,
    jti: &'a str,
}

fn assertion(a: &Assertion<'_>) -> String {
    let mut claims = json!({"iss": a.iss, "sub": a.sub, "aud": a.aud, "jti": a.jti});
    if let Some(exp) = a.exp {
        claims["exp"] = json!(exp);
    }
    a.key.sign(&claims).unwrap()
}

#[tokio::test]
async fn private_key_jwt_and_its_refusals() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let kid = key.thumbprint();
        let key = key.with_kid(kid);
        let public = serde_json::to_value(key.public_jwk().unwrap()).unwrap();
        let other = Signer::new(
            SigningKey::generate(Algorithm::ES256)
                .unwrap()
                .with_kid(key.kid().unwrap().to_owned()),
        );
        let key = Signer::new(key);
        let c = s
            .register(json!({"client_name": "pkjwt", "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [public]}}))
            .await;
        assert!(
            c.get("client_secret").is_none(),
            "no secret for private_key_jwt: {c}"
        );
        let id = c["client_id"].as_str().unwrap().to_owned();
        let now = s.now();
        let good = Assertion {
            key: &key,
            iss: &id,
            sub: &id,
            aud: ISSUER,
            exp: Some(now + 60),
            jti: "a-1",
        };
        let post = |jwt: String| {
            let form = vec![
                ("grant_type".to_owned(), "client_credentials".to_owned()),
                (
                    "client_assertion_type".to_owned(),
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
                ),
                ("client_assertion".to_owned(), jwt),
            ];
            s.http.post(s.url("/token")).form(&form).send()
        };
        let resp = post(assertion(&good)).await.unwrap();
        assert_eq!(resp.status(), 200, "{}: {:?}", b.name, resp.text().await);

        let refusals = [
            ("replayed jti", assertion(&good)),
            (
                "wrong aud",
                assertion(&Assertion {
                    aud: "https://elsewhere",
                    jti: "b-1",
                    ..good
                }),
            ),
            (
                "no exp",
                assertion(&Assertion {
                    exp: None,
                    jti: "b-2",
                    ..good
                }),
            ),
            (
                "expired",
                assertion(&Assertion {
                    exp: Some(now - 3600),
                    jti: "b-3",
                    ..good
                }),
            ),
            (
                "exp too far",
                assertion(&Assertion {
                    exp: Some(now + 86_400),
                    jti: "b-4",
                    ..good
                }),
            ),
            (
                "sub differs",
                assertion(&Assertion {
                    sub: "someone",
                    jti: "b-5",
                    ..good
                }),
            ),
            (
                "unknown iss",
                assertion(&Assertion {
                    iss: "tc_nobody",
                    sub: "tc_nobody",
                    jti: "b-6",
                    ..good
                }),
            ),
            (
                "other key",
                assertion(&Assertion {
                    key: &other,
                    jti: "b-7",
                    ..good
                }),
            ),
            ("not a JWT", "not.a.jwt".to_owned()),
        ];
        for (what, jwt) in refusals {
            let resp = post(jwt).await.unwrap();
            assert_eq!(
                oauth_error(resp).await,
                (401, "invalid_client".into()),
                "{}: {what}",
                b.name
            );
        }
        // A client that exists but has a secret gets the very answer an
        // unknown one gets: client ids are not enumerable here.
        let (basic, _) = s.basic_client(json!({})).await;
        let answer = |iss: &str, jti: &'static str| {
            let jwt = assertion(&Assertion {
                iss,
                sub: iss,
                jti,
                ..good
            });
            async move { post(jwt).await.unwrap().text().await.unwrap() }
        };
        assert_eq!(
            answer(&basic, "d-1").await,
            answer("tc_nobody", "d-2").await,
            "{}",
            b.name
        );
        // Wrong assertion type.
        let resp = s
            .http
            .post(s.url("/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", "urn:x"),
                (
                    "client_assertion",
                    &assertion(&Assertion { jti: "c-1", ..good }),
                ),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(oauth_error(resp).await, (400, "invalid_request".into()));
        s.stop().await;
    }
}

/// A `private_key_jwt` client's key, registered: (client id, signer).
async fn assertion_client(s: &TestServer) -> (String, Signer) {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let kid = key.thumbprint();
    let key = key.with_kid(kid);
    let public = serde_json::to_value(key.public_jwk().unwrap()).unwrap();
    let c = s
        .register(json!({"client_name": "pkjwt", "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [public]}}))
        .await;
    (
        c["client_id"].as_str().unwrap().to_owned(),
        Signer::new(key),
    )
}

/// draft-ietf-oauth-rfc7523bis §4 (audience injection): by default a client
/// assertion's `aud` is the issuer identifier and nothing else; the token
/// endpoint URL, or the issuer beside another value, is `invalid_client`.
/// `tokens.private_key_jwt_audience = "issuer_or_token_endpoint"` accepts
/// what RFC 7523 first allowed, for clients that still send the endpoint.
#[tokio::test]
async fn a_client_assertion_names_the_issuer_alone_unless_configured_otherwise() {
    let endpoint = format!("{ISSUER}/token");
    for b in backends().await {
        for (setting, endpoint_accepted) in
            [(None, false), (Some("issuer_or_token_endpoint"), true)]
        {
            let env: Vec<(&str, &str)> = setting
                .map(|v| ("TESSERA_TOKENS_PRIVATE_KEY_JWT_AUDIENCE", v))
                .into_iter()
                .collect();
            let s = TestServer::start(&b, &env).await;
            let (id, key) = assertion_client(&s).await;
            let now = s.now();
            let cases = [
                ("the issuer", json!(ISSUER), true),
                ("the issuer, in an array of one", json!([ISSUER]), true),
                ("the token endpoint", json!(endpoint), endpoint_accepted),
                (
                    "issuer and token endpoint",
                    json!([ISSUER, endpoint]),
                    endpoint_accepted,
                ),
                (
                    "issuer beside another",
                    json!([ISSUER, "https://rs.example"]),
                    endpoint_accepted,
                ),
                ("elsewhere", json!("https://elsewhere.example"), false),
            ];
            for (n, (what, aud, accepted)) in cases.into_iter().enumerate() {
                let jwt = key
                    .sign(&json!({"iss": id, "sub": id, "aud": aud, "exp": now + 60, "jti": format!("j-{n}")}))
                    .unwrap();
                let resp = s
                    .http
                    .post(s.url("/token"))
                    .form(&[
                        ("grant_type", "client_credentials"),
                        (
                            "client_assertion_type",
                            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                        ),
                        ("client_assertion", jwt.as_str()),
                    ])
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                let body: serde_json::Value = resp.json().await.unwrap();
                let want = if accepted { 200 } else { 401 };
                assert_eq!(status, want, "{}: {setting:?}: aud {what}: {body}", b.name);
                if !accepted {
                    assert_eq!(body["error"], "invalid_client", "{what}");
                }
            }
            // The same rule where clients authenticate to revoke and introspect.
            let jwt = key
                .sign(
                    &json!({"iss": id, "sub": id, "aud": endpoint, "exp": now + 60, "jti": "r-1"}),
                )
                .unwrap();
            let resp = s
                .http
                .post(s.url("/introspect"))
                .form(&[
                    ("token", "x"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", jwt.as_str()),
                ])
                .send()
                .await
                .unwrap();
            if endpoint_accepted {
                assert_eq!(resp.status(), 200, "{}: {setting:?}: introspect", b.name);
            } else {
                assert_eq!(
                    oauth_error(resp).await,
                    (401, "invalid_client".into()),
                    "{}: {setting:?}: introspect",
                    b.name
                );
            }
            s.stop().await;
        }
    }
}
