//! One harness for the tests that need a real, in-process `tessera serve`
//! on a free loopback port:
//!
//! - [`TestServer`] on each of [`backends`] (SQLite, and PostgreSQL when
//!   `TESSERA_TEST_DATABASE_URL` is set), with a fixed [`ISSUER`] and a
//!   manual clock: the server's own HTTP tests;
//! - [`Authority`] on SQLite with the system clock and its quickstart
//!   client: the verifier following its keys and deny-list, the gateway in
//!   front of it.
//!
//! Test support: a failure panics, which is what a test wants.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod backend;
mod server;

use std::sync::Arc;

use serde_json::{json, Value};
use tessera_server::Running;

pub use backend::{backends, Backend};
pub use server::{
    config, config_file, count_rows, oauth_error, verify, TestServer, ISSUER, METRICS, T0,
};

/// A running authority.
#[derive(Debug)]
pub struct Authority {
    /// The server (its state, and `stop`).
    pub running: Running,
    /// Its issuer, which is also its base URL (`http://127.0.0.1:PORT`).
    pub issuer: String,
    /// The admin token.
    pub admin: String,
    /// The `quickstart` client made at first start: (id, secret).
    pub client: (String, String),
    /// An HTTP client for the test's requests.
    pub http: reqwest::Client,
    /// The data folder (kept until the authority is dropped).
    pub data: tempfile::TempDir,
}

impl Authority {
    /// Starts one without background tasks (keys are reloaded when the
    /// admin API changes them).
    pub async fn start() -> Self {
        let backend = Backend::sqlite();
        let config = server::load(&backend, &[], None, None);
        let admin = config.admin_token_file.clone();
        let running = server::launch(&backend, config, Arc::new(tessera_server::SystemClock)).await;
        let creds =
            std::fs::read_to_string(running.quickstart_credentials.as_ref().unwrap()).unwrap();
        let (id, secret) = creds.trim().split_once(':').unwrap();
        Self {
            issuer: running.state.config.issuer.clone(),
            admin: server::admin_token(&admin),
            client: (id.to_owned(), secret.to_owned()),
            running,
            http: reqwest::Client::new(),
            data: backend.data,
        }
    }

    /// `issuer` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// POSTs `body` to the admin API at `path`; its JSON answer, which
    /// must be a success.
    pub async fn admin(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    /// Registers a client (RFC 7591 metadata plus Tessera's): (id, secret).
    pub async fn register(&self, metadata: Value) -> (String, String) {
        let mut body = json!({"client_name": "test"});
        if let (Some(b), Some(m)) = (body.as_object_mut(), metadata.as_object()) {
            b.extend(m.clone());
        }
        let c = self.admin("/admin/clients", body).await;
        (
            c["client_id"].as_str().unwrap().to_owned(),
            c["client_secret"].as_str().unwrap().to_owned(),
        )
    }

    /// Registers a client that may read the deny-list feed (the
    /// `revocations:read` permission), as a gateway or a verifier following
    /// the feed is: (id, secret).
    pub async fn follower(&self) -> (String, String) {
        self.register(json!({"client_name": "follower", "permissions": ["revocations:read"]}))
            .await
    }

    /// A client_credentials access token for `client`.
    pub async fn token_for(&self, client: &(String, String)) -> String {
        server::client_credentials(&self.http, &self.url("/token"), &client.0, &client.1).await
    }

    /// A client_credentials access token for the quickstart client.
    pub async fn token(&self) -> String {
        self.token_for(&self.client).await
    }

    /// Writes `text` to a file in the data folder; its path.
    pub fn file(&self, name: &str, text: &str) -> std::path::PathBuf {
        let path = self.data.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.running.stop().await.unwrap();
    }
}
