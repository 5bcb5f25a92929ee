//! The ceiling the server benchmark compares `tessera serve` with: a bare
//! axum handler that only parses the form and signs one ES256 token (raw
//! aws-lc-rs, no client lookup, no secret check, no metrics), and a fixed
//! 300-byte GET. Run by `bench/server.sh`; not a server anyone should use.
//!
//! Usage: `bare ADDR`.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use tessera_jose::b64;

struct Bare {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    header: String,
}

async fn token(
    State(st): State<Arc<Bare>>,
    Form(form): Form<HashMap<String, String>>,
) -> axum::response::Response {
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return (StatusCode::BAD_REQUEST, "grant_type").into_response();
    }
    let now = tessera_jose::UnixTime::now().secs();
    let claims = serde_json::json!({
        "iss": "http://127.0.0.1:8080",
        "sub": "tc_MdqBKYvHVsu0DKfxw7NHIQ",
        "aud": "http://127.0.0.1:8080",
        "exp": now + 900,
        "iat": now,
        "jti": "cVH-KMkWozqqR2OUcyNe_g",
        "client_id": "tc_MdqBKYvHVsu0DKfxw7NHIQ",
    });
    let Ok(payload) = serde_json::to_vec(&claims) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut token = st.header.clone();
    token.push('.');
    b64::encode_into(&payload, &mut token);
    let Ok(sig) = st.key.sign(&st.rng, token.as_bytes()) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    token.push('.');
    b64::encode_into(sig.as_ref(), &mut token);
    Json(serde_json::json!({"access_token": token, "token_type": "Bearer", "expires_in": 900}))
        .into_response()
}

async fn fixed() -> &'static str {
    // 300 bytes, about the size of a one-key JWKS.
    concat!(
        "{\"keys\":[{\"alg\":\"ES256\",\"crv\":\"P-256\",\"kid\":\"jQL1kNzAGomccfmt8IB4TWbT0bXIVOkFb-QdOX0cE0s\",",
        "\"kty\":\"EC\",\"use\":\"sig\",\"x\":\"JB1aH0wuemhE_DOJCltNjnl70Ea-ae7EfCLOKGlvKfU\",",
        "\"y\":\"C1zEV0-Bq82N_Cbs2mOqZ5KHAkmj-MwPbxLS7LqnTIY\"}],\"padding\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}"
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18181".to_owned());
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())?;
    let header = b64::encode(
        br#"{"alg":"ES256","kid":"jQL1kNzAGomccfmt8IB4TWbT0bXIVOkFb-QdOX0cE0s","typ":"at+jwt"}"#,
    );
    let state = Arc::new(Bare { key, rng, header });
    let app = Router::new()
        .route("/token", post(token))
        .route("/fixed", get(fixed))
        // Any other path answers like /fixed: the upstream of the gateway benchmark.
        .fallback(fixed)
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
