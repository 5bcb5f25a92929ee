//! An orders service that accepts only valid Tessera access tokens.
//!
//! ```sh
//! cargo run -p tessera -- serve          # terminal 1: the authority on 127.0.0.1:8080
//! cargo run -p orders-service            # terminal 2: this service on 127.0.0.1:9000
//! ```
//!
//! It prints a `curl` that gets a token for the quickstart client and calls
//! `GET /orders` with it. Settings from the environment: `TESSERA_ISSUER`
//! (default `http://127.0.0.1:8080`), `ORDERS_AUDIENCE` (default: the
//! issuer, the audience `tessera serve` gives clients registered without
//! one), `ORDERS_LISTEN` (default `127.0.0.1:9000`).

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_verify::{Claims, Verifier, VerifyLayer};

/// The claims this service reads from a verified token.
#[derive(Debug, Deserialize)]
struct Caller {
    sub: String,
    client_id: Option<String>,
    scope: Option<String>,
}

async fn orders(Claims(caller): Claims<Caller>) -> Json<Value> {
    Json(json!({
        "orders": [{"id": 1, "item": "tessera tile"}],
        "for": caller.sub,
        "client_id": caller.client_id,
        "scope": caller.scope,
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = std::env::var("TESSERA_ISSUER").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let audience = std::env::var("ORDERS_AUDIENCE").unwrap_or_else(|_| issuer.clone());
    let listen = std::env::var("ORDERS_LISTEN").unwrap_or_else(|_| "127.0.0.1:9000".into());

    // Reads the issuer's discovery document, then its JWKS; keeps the keys
    // fresh in the background and follows rotations.
    let verifier = Verifier::from_issuer(issuer.clone())
        .audience(audience)
        .build()
        .await
        .map_err(|e| format!("{e} (is `tessera serve` running at {issuer}?)"))?;

    let app = Router::new()
        .route("/orders", get(orders))
        .layer(VerifyLayer::new(Arc::new(verifier)))
        // Public: added after the layer, so it is not behind it.
        .route("/health", get(|| async { "ok\n" }));

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("orders-service on http://{listen}, tokens from {issuer}");
    println!("try:");
    println!(
        "  TOKEN=$(curl -s -u \"$(cat tessera-data/quickstart.credentials)\" -d grant_type=client_credentials {issuer}/token | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')"
    );
    println!("  curl -s -H \"Authorization: Bearer $TOKEN\" http://{listen}/orders");
    println!("  curl -si http://{listen}/orders   # 401 without a token");
    axum::serve(listener, app).await?;
    Ok(())
}
