//! Token exchange (RFC 8693): downscoping, delegation, phantom tokens.

use serde_json::{json, Value};

use crate::common::{backends, oauth_error, verify, TestServer};
use crate::idp::Idp;

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const AT: &str = "urn:ietf:params:oauth:token-type:access_token";

async fn exchange(
    s: &TestServer,
    id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut f = vec![("grant_type", EXCHANGE)];
    f.extend_from_slice(form);
    s.token_basic(id, secret, &f).await
}

#[tokio::test]
async fn downscoping_delegation_and_phantom_tokens() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let (app, app_secret) = s
            .basic_client(json!({"audiences": ["orders-api", "billing-api"], "scope": "orders:read orders:write", "claims": {"tenant_id": "acme"}}))
            .await;
        let (svc, svc_secret) = s
            .basic_client(json!({"grant_types": ["client_credentials", EXCHANGE], "introspection_audiences": ["orders-api"], "audiences": ["internal"]}))
            .await;
        let subject = s.token(&app, &app_secret).await;
        let subject_claims = verify(&subject, &s.jwks().await, "orders-api", s.now()).unwrap();

        // Downscoping: one audience, less scope.
        let resp = exchange(
            &s,
            &svc,
            &svc_secret,
            &[
                ("subject_token", &subject),
                ("subject_token_type", AT),
                ("audience", "orders-api"),
                ("scope", "orders:read"),
            ],
        )
        .await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "{}: {body}", b.name);
        assert_eq!(body["issued_token_type"], AT);
        let c = verify(
            body["access_token"].as_str().unwrap(),
            &s.jwks().await,
            "orders-api",
            s.now(),
        )
        .unwrap();
        assert_eq!(
            (c["sub"].as_str(), c["client_id"].as_str()),
            (subject_claims["sub"].as_str(), Some(svc.as_str()))
        );
        assert_eq!(
            (c["aud"].as_str(), c["scope"].as_str()),
            (Some("orders-api"), Some("orders:read"))
        );
        assert_eq!(c["tenant_id"], "acme", "the user's claims carry over");
        assert!(
            c["exp"].as_i64().unwrap() <= subject_claims["exp"].as_i64().unwrap(),
            "never longer-lived"
        );
        assert!(c.get("act").is_none());

        // Never wider.
        let resp = exchange(
            &s,
            &svc,
            &svc_secret,
            &[
                ("subject_token", &subject),
                ("subject_token_type", AT),
                ("audience", "payroll-api"),
            ],
        )
        .await;
        assert_eq!(oauth_error(resp).await, (400, "invalid_target".into()));
        let resp = exchange(
            &s,
            &svc,
            &svc_secret,
            &[
                ("subject_token", &subject),
                ("subject_token_type", AT),
                ("scope", "orders:admin"),
            ],
        )
        .await;
        assert_eq!(oauth_error(resp).await, (400, "invalid_scope".into()));

        // Delegation: the service proves itself with its own token.
        let actor = s.token(&svc, &svc_secret).await;
        let resp = exchange(
            &s,
            &svc,
            &svc_secret,
            &[
                ("subject_token", &subject),
                ("subject_token_type", AT),
                ("actor_token", &actor),
                ("actor_token_type", AT),
            ],
        )
        .await;
        let body: Value = resp.json().await.unwrap();
        let c = verify(
            body["access_token"].as_str().unwrap(),
            &s.jwks().await,
            "orders-api",
            s.now(),
        )
        .unwrap();
        assert_eq!(c["act"], json!({"sub": svc}), "{}", b.name);
        let resp = exchange(
            &s,
            &svc,
            &svc_secret,
            &[
                ("subject_token", &subject),
                ("subject_token_type", AT),
                ("actor_token", &subject),
                ("actor_token_type", AT),
            ],
        )
        .await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "invalid_request".into()),
            "someone else's token as actor"
        );

        // Phantom token: an opaque token exchanged for an internal JWT.
        let (opq, opq_secret) = s.basic_client(json!({"token_format": "opaque", "audiences": ["orders-api"], "scope": "orders:read"})).await;
        let opaque = s.token(&opq, &opq_secret).await;
        assert!(opaque.starts_with("tso_"));
        let resp = exchange(
            &s,
            &svc,
            &svc_secret,
            &[("subject_token", &opaque), ("subject_token_type", AT)],
        )
        .await;
        let body: Value = resp.json().await.unwrap();
        let c = verify(
            body["access_token"].as_str().unwrap(),
            &s.jwks().await,
            "orders-api",
            s.now(),
        )
        .unwrap();
        assert_eq!(c["sub"], opq.as_str(), "{}", b.name);

        // Refusals.
        let (stranger, stranger_secret) = s.basic_client(json!({"grant_types": ["client_credentials", EXCHANGE], "introspection_audiences": ["payroll-api"]})).await;
        let resp = exchange(
            &s,
            &stranger,
            &stranger_secret,
            &[("subject_token", &subject), ("subject_token_type", AT)],
        )
        .await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "invalid_grant".into()),
            "not its token to exchange"
        );
        let resp = exchange(
            &s,
            &svc,
            &svc_secret,
            &[
                ("subject_token", &subject),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:saml2",
                ),
            ],
        )
        .await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "unsupported_token_type".into())
        );
        let resp = exchange(
            &s,
            &svc,
            &svc_secret,
            &[("subject_token", "garbage"), ("subject_token_type", AT)],
        )
        .await;
        assert_eq!(oauth_error(resp).await, (400, "invalid_request".into()));
        let resp = exchange(&s, &svc, &svc_secret, &[("subject_token_type", AT)]).await;
        assert_eq!(oauth_error(resp).await, (400, "invalid_request".into()));
        let resp = exchange(
            &s,
            &app,
            &app_secret,
            &[("subject_token", &subject), ("subject_token_type", AT)],
        )
        .await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "unauthorized_client".into()),
            "grant not registered"
        );
        // A revoked subject token cannot be exchanged.
        let resp = s
            .http
            .post(s.url("/revoke"))
            .basic_auth(&app, Some(&app_secret))
            .form(&[("token", subject.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let resp = exchange(
            &s,
            &svc,
            &svc_secret,
            &[("subject_token", &subject), ("subject_token_type", AT)],
        )
        .await;
        assert_eq!(
            oauth_error(resp).await,
            (400, "invalid_request".into()),
            "{}: revoked",
            b.name
        );
        s.stop().await;
    }
}

/// Federation: an upstream issuer's token (its keys served over HTTP)
/// exchanged for a Tessera token, with the claim mapping of the config.
#[tokio::test]
async fn federation_from_a_configured_upstream_issuer() {
    // The upstream identity provider: one ES256 key behind a JWKS URL.
    let Idp {
        issuer: idp,
        jwks_url,
        key: idp_key,
    } = Idp::start("https://idp.example.test").await;
    // Issued at `now`, the server's clock: it judges upstream tokens by it.
    let upstream = |now: i64, claims: Value, signer: &tessera_jose::Signer| {
        let mut c = json!({"iss": idp, "sub": "alice", "aud": "tessera-federation", "exp": now + 300, "iat": now,
                           "email": "alice@example.com", "groups": ["ops"], "password_hash": "x"});
        c.as_object_mut()
            .unwrap()
            .extend(claims.as_object().unwrap().clone());
        signer.sign(&c).unwrap()
    };

    for b in backends().await {
        let file = b.data.path().join("federation.toml");
        std::fs::write(
            &file,
            format!("[[federation]]\nissuer = \"{idp}\"\njwks_url = \"{jwks_url}\"\naudience = \"tessera-federation\"\nclaims = {{ email = \"email\", groups = \"roles\" }}\n"),
        )
        .unwrap();
        let config = crate::common::config_file(&b, &[], Some(&file));
        let s = TestServer::start_with(
            &b,
            config,
            tessera_server::ManualClock::new(crate::common::T0),
        )
        .await;
        let (svc, svc_secret) = s
            .basic_client(json!({"grant_types": [EXCHANGE], "audiences": ["orders-api"]}))
            .await;
        let jwt_type = "urn:ietf:params:oauth:token-type:jwt";

        let good = upstream(s.now(), json!({}), &idp_key);
        let resp = exchange(
            &s,
            &svc,
            &svc_secret,
            &[("subject_token", &good), ("subject_token_type", jwt_type)],
        )
        .await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "{}: {body}", b.name);
        let c = verify(
            body["access_token"].as_str().unwrap(),
            &s.jwks().await,
            "orders-api",
            s.now(),
        )
        .unwrap();
        assert_eq!(
            (c["sub"].as_str(), c["client_id"].as_str()),
            (Some("idp.example.test|alice"), Some(svc.as_str())),
            "the upstream's subject, in its namespace"
        );
        assert_eq!(
            (c["email"].as_str(), c["roles"].clone()),
            (Some("alice@example.com"), json!(["ops"]))
        );
        assert!(
            c.get("password_hash").is_none() && c.get("groups").is_none(),
            "only mapped claims: {c}"
        );
        assert!(
            body.get("refresh_token").is_none(),
            "no refresh_token grant, no refresh token: {body}"
        );

        // A client that may have refresh tokens gets one with the federated
        // token: the upstream login becomes a Tessera session, refreshed
        // with the mapped claims long after the upstream token expired.
        let (app, app_secret) = s
            .basic_client(
                json!({"grant_types": [EXCHANGE, "refresh_token"], "audiences": ["orders-api"]}),
            )
            .await;
        let resp = exchange(
            &s,
            &app,
            &app_secret,
            &[("subject_token", &good), ("subject_token_type", jwt_type)],
        )
        .await;
        let body: Value = resp.json().await.unwrap();
        let refresh = body["refresh_token"].as_str().unwrap_or_default();
        assert!(refresh.starts_with("tsr_"), "{}: {body}", b.name);
        s.advance(std::time::Duration::from_secs(3600)).await;
        let resp = s
            .token_basic(
                &app,
                &app_secret,
                &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
            )
            .await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "{}: {body}", b.name);
        let c = verify(
            body["access_token"].as_str().unwrap(),
            &s.jwks().await,
            "orders-api",
            s.now(),
        )
        .unwrap();
        assert_eq!(
            (
                c["sub"].as_str(),
                c["email"].as_str(),
                c["client_id"].as_str()
            ),
            (
                Some("idp.example.test|alice"),
                Some("alice@example.com"),
                Some(app.as_str())
            )
        );
        assert_ne!(body["refresh_token"].as_str(), Some(refresh), "rotated");

        // Alice is signed out everywhere: an upstream token issued before
        // that does not sign her back in; one issued after does.
        let resp = s
            .admin_post("/admin/revoke", json!({"sub": "idp.example.test|alice"}))
            .await;
        assert_eq!(resp.status(), 200);
        let before = upstream(s.now(), json!({"iat": s.now() - 10}), &idp_key);
        let resp = exchange(
            &s,
            &app,
            &app_secret,
            &[("subject_token", &before), ("subject_token_type", jwt_type)],
        )
        .await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            (status.as_u16(), body["error"].as_str()),
            (400, Some("invalid_request")),
            "{}: {body}",
            b.name
        );
        assert!(body["error_description"]
            .as_str()
            .unwrap()
            .contains("revoked"));
        let after = upstream(s.now(), json!({"iat": s.now() + 1}), &idp_key);
        let resp = exchange(
            &s,
            &app,
            &app_secret,
            &[("subject_token", &after), ("subject_token_type", jwt_type)],
        )
        .await;
        assert_eq!(resp.status(), 200, "{}", b.name);

        let other_key = {
            let k = tessera_jose::SigningKey::generate(tessera_jose::Algorithm::ES256).unwrap();
            tessera_jose::Signer::new(k.with_kid(idp_key.key().kid().unwrap().to_owned()))
        };
        let unpublished = {
            let k = tessera_jose::SigningKey::generate(tessera_jose::Algorithm::ES256).unwrap();
            let kid = k.thumbprint();
            tessera_jose::Signer::new(k.with_kid(kid))
        };
        let refusals = [
            (
                "wrong audience",
                upstream(s.now(), json!({"aud": "someone-else"}), &idp_key),
                "audience_mismatch",
            ),
            (
                "unconfigured issuer",
                upstream(s.now(), json!({"iss": "https://evil.test"}), &idp_key),
                "issuer_mismatch",
            ),
            (
                "expired",
                upstream(s.now(), json!({"exp": s.now() - 3600}), &idp_key),
                "expired",
            ),
            (
                "forged under a published kid",
                upstream(s.now(), json!({}), &other_key),
                "bad_signature",
            ),
            (
                "key the upstream does not publish",
                upstream(s.now(), json!({}), &unpublished),
                "unknown_kid",
            ),
        ];
        for (what, token, code) in refusals {
            let resp = exchange(
                &s,
                &svc,
                &svc_secret,
                &[("subject_token", &token), ("subject_token_type", jwt_type)],
            )
            .await;
            let status = resp.status();
            let body: Value = resp.json().await.unwrap();
            assert_eq!(
                (status.as_u16(), body["error"].as_str()),
                (400, Some("invalid_request")),
                "{}: {what}: {body}",
                b.name
            );
            assert!(
                body["error_description"].as_str().unwrap().contains(code),
                "{what}: {body}"
            );
        }
        s.stop().await;
    }
}

/// A federation mapping may not set a claim the server owns: the settings
/// are refused, naming the claim, whichever reserved one it is.
#[tokio::test]
async fn a_federation_mapping_onto_a_reserved_claim_is_refused_at_start() {
    for target in ["sub", "client_id", "cnf", "auth_time"] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("federation.toml");
        std::fs::write(
            &file,
            format!("[[federation]]\nissuer = \"https://idp.example.test\"\njwks_url = \"http://127.0.0.1:9/jwks\"\naudience = \"tessera\"\nclaims = {{ email = \"{target}\" }}\n"),
        )
        .unwrap();
        let err = tessera_server::Config::load(
            Some(&file),
            Vec::new(),
            &tessera_server::Overrides::default(),
        )
        .unwrap_err();
        assert_eq!(err.setting, "federation[0].claims", "{target}: {err}");
        assert!(
            err.message
                .contains(&format!("claims may not set {target:?}")),
            "{target}: {err}"
        );
    }
}
