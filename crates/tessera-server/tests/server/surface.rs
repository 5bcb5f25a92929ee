//! JWKS caching headers, discovery documents, health, readiness, metrics.

use serde_json::Value;

use crate::common::{backends, TestServer, ISSUER, METRICS};

#[tokio::test]
async fn jwks_has_cache_control_a_strong_etag_and_304() {
    for b in backends().await {
        let s = TestServer::start(&b, &[("TESSERA_KEYS_PREPUBLISH", "10m"), METRICS]).await;
        let resp = s
            .http
            .get(s.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let cc = resp.headers()["cache-control"].to_str().unwrap().to_owned();
        let max_age: u64 = cc
            .strip_prefix("public, max-age=")
            .unwrap()
            .parse()
            .unwrap();
        assert!(max_age <= 300, "at most half of prepublish (10m): {cc}");
        let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
        assert!(
            etag.starts_with('"') && !etag.starts_with("W/"),
            "strong: {etag}"
        );
        let body: Value = resp.json().await.unwrap();
        let key = &body["keys"][0];
        assert_eq!(key["kty"], "EC");
        assert_eq!(key["use"], "sig");
        assert!(key.get("d").is_none());

        let resp = s
            .http
            .get(s.url("/.well-known/jwks.json"))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 304);
        assert_eq!(resp.headers()["etag"], etag.as_str());
        let resp = s
            .http
            .get(s.url("/.well-known/jwks.json"))
            .header("if-none-match", "\"other\"")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);

        // A rotation changes the document and its ETag. (An immediate one:
        // the pending key is published from the start, so a scheduled-style
        // rotation only brings its activation forward.)
        let resp = s
            .admin_post("/admin/keys/rotate", serde_json::json!({"immediate": true}))
            .await;
        assert_eq!(resp.status(), 200);
        let resp = s
            .http
            .get(s.url("/.well-known/jwks.json"))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_ne!(resp.headers()["etag"], etag.as_str());
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["keys"].as_array().unwrap().len(),
            3,
            "retired, active and the next key pre-published"
        );

        let metrics = s.metrics().await;
        assert!(
            metrics.contains("tessera_jwks_requests_total 4"),
            "{metrics}"
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn discovery_documents_carry_the_required_members() {
    for b in backends().await {
        let s = TestServer::start(&b, &[]).await;
        let oidc: Value = s
            .http
            .get(s.url("/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for member in [
            "issuer",
            "authorization_endpoint",
            "token_endpoint",
            "jwks_uri",
            "response_types_supported",
            "subject_types_supported",
            "id_token_signing_alg_values_supported",
        ] {
            assert!(
                oidc.get(member).is_some(),
                "OIDC Discovery requires {member}"
            );
        }
        assert_eq!(oidc["issuer"], ISSUER);
        assert_eq!(oidc["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));
        assert_eq!(oidc["token_endpoint"], format!("{ISSUER}/token"));
        assert_eq!(
            oidc["grant_types_supported"],
            serde_json::json!([
                "client_credentials",
                "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:token-exchange"
            ])
        );
        // RFC 8414 §2: every endpoint that lists private_key_jwt lists its
        // signing algorithms too (strict clients refuse the document
        // otherwise). All three list it.
        for endpoint in ["token", "revocation", "introspection"] {
            assert_eq!(
                oidc[format!("{endpoint}_endpoint_auth_methods_supported")],
                serde_json::json!([
                    "client_secret_basic",
                    "client_secret_post",
                    "private_key_jwt"
                ]),
                "{endpoint}"
            );
            let algs = &oidc[format!("{endpoint}_endpoint_auth_signing_alg_values_supported")];
            assert!(
                algs.as_array()
                    .is_some_and(|a| a.iter().any(|x| x == "ES256")),
                "{endpoint}: {algs}"
            );
        }
        let oauth: Value = s
            .http
            .get(s.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(oauth["issuer"], ISSUER);
        assert_eq!(oauth["token_endpoint"], oidc["token_endpoint"]);
        assert!(oauth.get("id_token_signing_alg_values_supported").is_none());
        s.stop().await;
    }
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    for b in backends().await {
        let s = TestServer::start(&b, &[METRICS]).await;
        let (id, secret) = s.basic_client(serde_json::json!({})).await;
        s.token(&id, &secret).await;
        s.token(&id, &secret).await;
        assert_eq!(
            s.http.get(s.url("/healthz")).send().await.unwrap().status(),
            200
        );
        assert_eq!(
            s.http.get(s.url("/readyz")).send().await.unwrap().status(),
            200
        );
        s.advance(std::time::Duration::from_secs(3600)).await;
        let metrics = s.metrics().await;
        let issued = format!(
            "tessera_tokens_issued_total{{grant=\"client_credentials\",client=\"{id}\"}} 2"
        );
        assert!(metrics.contains(&issued), "{metrics}");
        assert!(
            metrics.contains("tessera_active_key_age_seconds{alg=\"ES256\"} 3600"),
            "{metrics}"
        );
        // The database going away makes the node unready, not dead.
        s.running.store().close().await;
        assert_eq!(
            s.http.get(s.url("/readyz")).send().await.unwrap().status(),
            503
        );
        assert_eq!(
            s.http.get(s.url("/healthz")).send().await.unwrap().status(),
            200
        );
        // Tokens keep coming from memory meanwhile.
        s.token(&id, &secret).await;
        s.stop().await;
    }
}
