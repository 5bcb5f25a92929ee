//! An in-process `tessera serve` on a free loopback port, with its own
//! data folder (SQLite), for tests that need a real authority: the
//! verifier following its keys and deny-list, the gateway in front of it.
//!
//! Test support: a failure panics, which is what a test wants.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use serde_json::{json, Value};
use tessera_server::{Config, Overrides, Running, StartOptions};

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
        let data = tempfile::tempdir().unwrap();
        let config = Config::load(
            None,
            Vec::new(),
            &Overrides {
                data: Some(data.path().to_path_buf()),
                listen: Some("127.0.0.1:0".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        let admin_file = config.admin_token_file.clone();
        let running = tessera_server::start(
            config,
            StartOptions {
                background: false,
                ..StartOptions::default()
            },
        )
        .await
        .unwrap();
        let creds =
            std::fs::read_to_string(running.quickstart_credentials.as_ref().unwrap()).unwrap();
        let (id, secret) = creds.trim().split_once(':').unwrap();
        Self {
            issuer: running.state.config.issuer.clone(),
            admin: std::fs::read_to_string(admin_file)
                .unwrap()
                .trim()
                .to_owned(),
            client: (id.to_owned(), secret.to_owned()),
            running,
            http: reqwest::Client::new(),
            data,
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
        let resp = self
            .http
            .post(self.url("/token"))
            .basic_auth(&client.0, Some(&client.1))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
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
