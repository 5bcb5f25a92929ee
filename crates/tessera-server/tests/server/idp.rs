//! An upstream identity provider for the federation tests: one ES256 key
//! whose JWKS is served on a loopback port.

use serde_json::{json, Value};
use tessera_jose::{Algorithm, Signer, SigningKey};

/// An upstream identity provider: its issuer, one ES256 key, and that
/// key's JWKS served on a loopback port.
pub(crate) struct Idp {
    pub(crate) issuer: &'static str,
    pub(crate) jwks_url: String,
    pub(crate) key: Signer,
}

impl Idp {
    pub(crate) async fn start(issuer: &'static str) -> Self {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let kid = key.thumbprint();
        let key = Signer::new(key.with_kid(kid));
        let jwks =
            json!({"keys": [serde_json::to_value(key.key().public_jwk().unwrap()).unwrap()]})
                .to_string();
        let app =
            axum::Router::new().route("/jwks", axum::routing::get(move || async move { jwks }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let jwks_url = format!("http://{}/jwks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            issuer,
            jwks_url,
            key,
        }
    }

    /// A `[[federation]]` table for it.
    pub(crate) fn table(&self, extra: &str) -> String {
        format!(
            "[[federation]]\nissuer = \"{}\"\njwks_url = \"{}\"\naudience = \"tessera\"\n{extra}\n",
            self.issuer, self.jwks_url
        )
    }

    /// One of its tokens for `sub`, issued at `now` (the server's clock:
    /// the server judges upstream tokens by its own) for 5 minutes, with
    /// `claims` added.
    pub(crate) fn token(&self, sub: &str, now: i64, claims: Value) -> String {
        let mut c =
            json!({"iss": self.issuer, "sub": sub, "aud": "tessera", "exp": now + 300, "iat": now});
        c.as_object_mut()
            .unwrap()
            .extend(claims.as_object().unwrap().clone());
        self.key.sign(&c).unwrap()
    }
}
