//! `tessera clients ...`, `tessera keys list | rotate | compromised` and
//! `tessera revoke` against a real `tessera serve` on a free loopback port,
//! and `tessera serve`'s refusal of bad settings.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::crafted::serve_once;
use super::{parts, str_of, Dir, Run};

// ---------------------------------------------------------------------------
// Harness: a running authority
// ---------------------------------------------------------------------------

/// Where the server keeps its data: the default folder name, so that the
/// default `--admin-token-file` (./tessera-data/admin.token) finds the token.
const DATA: &str = "tessera-data";
const TOKEN_FILE: &str = "tessera-data/admin.token";

/// A `tessera serve` with its own data folder, killed when dropped.
struct Server {
    dir: Dir,
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts on a free port and waits until `/readyz` answers 200.
    fn start() -> Self {
        let dir = Dir::new();
        let child = Self::spawn(&dir, DATA, &[], "serve");
        let url = child.1;
        let mut server = Self {
            dir,
            child: child.0,
            url,
        };
        server.wait_ready();
        server
    }

    fn spawn(dir: &Dir, data: &str, env: &[(&str, &str)], out: &str) -> (Child, String) {
        let listen = format!("127.0.0.1:{}", free_port());
        let mut cmd = dir.command(&["serve", "--data", data, "--listen", &listen]);
        for (name, value) in env {
            cmd.env(name, value);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path(&format!("{out}.out"))).unwrap())
            .stderr(std::fs::File::create(dir.path(&format!("{out}.err"))).unwrap())
            .spawn()
            .unwrap();
        (child, format!("http://{listen}"))
    }

    fn wait_ready(&mut self) {
        let http = http();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "tessera serve exited ({status}): {}",
                    self.dir.read("serve.err")
                );
            }
            let ready = http
                .get(format!("{}/readyz", self.url))
                .send()
                .is_ok_and(|r| r.status() == 200);
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tessera serve not ready: {}",
                self.dir.read("serve.err")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs an admin command with `--server` and `--admin-token-file`.
    fn admin(&self, args: &[&str]) -> Run {
        self.admin_with_token(TOKEN_FILE, args)
    }

    fn admin_with_token(&self, token_file: &str, args: &[&str]) -> Run {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--server", &self.url, "--admin-token-file", token_file]);
        self.dir.run(&all)
    }

    /// `clients create --name NAME [extra]`; returns the server's answer.
    fn create_client(&self, name: &str, extra: &[&str]) -> Value {
        let mut args = vec!["clients", "create", "--name", name];
        args.extend_from_slice(extra);
        self.admin(&args).valid()
    }

    /// `keys list`: the keys as the admin API lists them.
    fn keys(&self) -> Vec<Value> {
        self.admin(&["keys", "list"]).valid()["keys"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// The kid of the one key in `state`.
    fn kid_in(&self, state: &str) -> String {
        let keys = self.keys();
        let found: Vec<&Value> = keys.iter().filter(|k| k["state"] == state).collect();
        assert_eq!(found.len(), 1, "one {state} key: {keys:#?}");
        str_of(found[0], "kid").to_owned()
    }

    /// The kids published in the JWKS.
    fn jwks_kids(&self) -> Vec<String> {
        let jwks: Value = http()
            .get(format!("{}/.well-known/jwks.json", self.url))
            .send()
            .unwrap()
            .json_value();
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| str_of(k, "kid").to_owned())
            .collect()
    }

    /// POST /token with client_credentials and HTTP Basic.
    fn token(&self, client_id: &str, secret: &str) -> (u16, Value) {
        let response = http()
            .post(format!("{}/token", self.url))
            .basic_auth(client_id, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .unwrap();
        (response.status().as_u16(), response.json_value())
    }
}

trait JsonValue {
    fn json_value(self) -> Value;
}

impl JsonValue for reqwest::blocking::Response {
    fn json_value(self) -> Value {
        serde_json::from_str(&self.text().unwrap()).unwrap()
    }
}

/// An HTTP client for the test's own requests (never through a proxy).
fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A loopback port nothing listens on (the kernel's pick, released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Run {
    /// Exit 1, nothing on stdout, and `tessera: server refused: CODE: description`.
    fn refused(&self, code: &str) {
        assert_eq!(self.code, 1, "expected refusal {code}: {self:#?}");
        assert_eq!(self.stdout, "", "{self:#?}");
        let prefix = format!("tessera: server refused: {code}: ");
        assert!(
            self.stderr
                .lines()
                .any(|l| l.starts_with(&prefix) && l.len() > prefix.len()),
            "expected a line {prefix:?}...: {self:#?}"
        );
    }
}

// ---------------------------------------------------------------------------
// clients create | list | delete
// ---------------------------------------------------------------------------

// create prints the server's answer with the secret, and the client can get
// a token with it at once; the token carries the registered settings.
#[test]
fn clients_create_prints_the_secret_and_the_client_gets_a_token() {
    let server = Server::start();
    let client = server.create_client(
        "orders",
        &[
            "--scope",
            "orders:read orders:write",
            "--audience",
            "orders-api",
            "--ttl",
            "10m",
            "--claim",
            "tenant_id=acme",
            "--claim",
            r#"roles=["admin"]"#,
        ],
    );
    let id = str_of(&client, "client_id");
    let secret = str_of(&client, "client_secret");
    assert!(!id.is_empty() && secret.len() >= 32, "{client:#}");
    assert_eq!(client["client_name"], "orders");
    assert_eq!(client["scope"], "orders:read orders:write");
    assert_eq!(client["audiences"], json!(["orders-api"]));
    assert_eq!(client["access_token_ttl"], 600);
    assert_eq!(
        client["claims"],
        json!({"tenant_id": "acme", "roles": ["admin"]})
    );
    assert_eq!(client["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(client["grant_types"], json!(["client_credentials"]));

    let (status, answer) = server.token(id, secret);
    assert_eq!(status, 200, "{answer:#}");
    let token = str_of(&answer, "access_token");
    let (header, claims) = parts(token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["client_id"], id);
    assert_eq!(claims["tenant_id"], "acme");
    assert_eq!(claims["roles"], json!(["admin"]));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    // And it verifies against the server's JWKS with the offline tool.
    let jwks = format!("{}/.well-known/jwks.json", server.url);
    let verified = server
        .dir
        .verify(&jwks, &["--aud", "orders-api", "--iss", &server.url], token)
        .valid();
    assert_eq!(verified["claims"]["client_id"], id);
}

// list shows the client (never a secret); delete removes it, and its
// credentials stop working at once.
#[test]
fn clients_list_shows_and_delete_removes() {
    let server = Server::start();
    let client = server.create_client("billing", &[]);
    let id = str_of(&client, "client_id");
    let secret = str_of(&client, "client_secret");
    assert_eq!(server.token(id, secret).0, 200);

    let list = server.admin(&["clients", "list"]).valid();
    let clients = list["clients"].as_array().unwrap();
    let listed = clients.iter().find(|c| c["client_id"] == id);
    assert_eq!(listed.unwrap()["client_name"], "billing", "{list:#}");
    assert!(
        clients.iter().all(|c| c.get("client_secret").is_none()),
        "{list:#}"
    );
    assert!(!list.to_string().contains(secret), "{list:#}");

    let deleted = server.admin(&["clients", "delete", id]);
    assert_eq!(deleted.code, 0, "{deleted:#?}");
    assert_eq!(deleted.stdout, "", "{deleted:#?}");
    let list = server.admin(&["clients", "list"]).valid();
    assert!(
        list["clients"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["client_id"] != id),
        "{list:#}"
    );
    let (status, answer) = server.token(id, secret);
    assert_eq!(status, 401, "{answer:#}");
    assert_eq!(answer["error"], "invalid_client");

    // Deleting it again, or an id that never existed, is refused.
    server
        .admin(&["clients", "delete", id])
        .refused("not_found");
    server
        .admin(&["clients", "delete", "tc_nobody"])
        .refused("not_found");
}

// --permission revocations:read lets a client read the deny-list feed; a
// client registered without it is refused with 403; an unknown permission
// is refused at registration.
#[test]
fn clients_create_with_the_feed_permission_reads_the_feed() {
    let server = Server::start();
    let feed = |client: &Value| {
        let response = http()
            .get(format!("{}/revocations?since=0", server.url))
            .basic_auth(
                str_of(client, "client_id"),
                Some(str_of(client, "client_secret")),
            )
            .send()
            .unwrap();
        (response.status().as_u16(), response.json_value())
    };
    let follower = server.create_client("gateway", &["--permission", "revocations:read"]);
    assert_eq!(follower["permissions"], json!(["revocations:read"]));
    let (status, page) = feed(&follower);
    assert_eq!(status, 200, "{page:#}");
    assert_eq!(page["entries"], json!([]));

    let plain = server.create_client("orders", &[]);
    assert_eq!(plain["permissions"], json!([]));
    let (status, answer) = feed(&plain);
    assert_eq!(status, 403, "{answer:#}");
    assert_eq!(answer["error"], "unauthorized_client");

    server
        .admin(&[
            "clients",
            "create",
            "--name",
            "x",
            "--permission",
            "revocations:write",
        ])
        .refused("invalid_client_metadata");
}

// --jwks registers public keys for private_key_jwt (no secret is issued); a
// single JWK becomes a set of one; a private key never leaves the machine.
#[test]
fn clients_create_with_jwks_registers_public_keys_only() {
    let server = Server::start();
    let dir = &server.dir;
    let key = dir.genkey("ES256", "client.jwk.json", &[]);
    let jwks = dir.public(&["client.jwk.json"], "client.jwks.json");
    dir.write("one.json", jwks["keys"][0].to_string());
    for file in ["client.jwks.json", "one.json"] {
        let client = server.create_client(
            "signer",
            &["--auth-method", "private_key_jwt", "--jwks", file],
        );
        assert_eq!(client["token_endpoint_auth_method"], "private_key_jwt");
        assert!(client.get("client_secret").is_none(), "{client:#}");
        assert_eq!(client["jwks"], jwks, "{file}");
    }

    let run = server.admin(&[
        "clients",
        "create",
        "--name",
        "leaky",
        "--auth-method",
        "private_key_jwt",
        "--jwks",
        "client.jwk.json",
    ]);
    run.usage();
    assert!(run.stderr.contains("private key"), "{run:#?}");
    assert!(!run.stderr.contains(str_of(&key, "d")), "{run:#?}");
    let list = server.admin(&["clients", "list"]).valid();
    assert!(!list.to_string().contains("leaky"), "{list:#}");
}

// --token-format, --introspection-audience and --assertion-claim reach the
// registration; a format the server does not know is a usage error.
#[test]
fn clients_create_token_format_introspection_and_assertion_claims() {
    let server = Server::start();
    let client = server.create_client(
        "resource",
        &[
            "--token-format",
            "opaque",
            "--introspection-audience",
            "orders-api",
            "--introspection-audience",
            "billing-api",
        ],
    );
    assert_eq!(client["token_format"], "opaque", "{client:#}");
    assert_eq!(
        client["introspection_audiences"],
        serde_json::json!(["orders-api", "billing-api"]),
        "{client:#}"
    );
    server.dir.genkey("ES256", "user-signer.jwk.json", &[]);
    server
        .dir
        .public(&["user-signer.jwk.json"], "user-signer.jwks.json");
    let signer = server.create_client(
        "login",
        &[
            "--grant-type",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "--auth-method",
            "private_key_jwt",
            "--jwks",
            "user-signer.jwks.json",
            "--assertion-claim",
            "email",
            "--assertion-claim",
            "name",
        ],
    );
    assert_eq!(
        signer["assertion_claims"],
        serde_json::json!(["email", "name"]),
        "{signer:#}"
    );
    let plain = server.create_client("plain", &[]);
    assert_eq!(plain["token_format"], "jwt", "{plain:#}");
    server
        .admin(&[
            "clients",
            "create",
            "--name",
            "x",
            "--token-format",
            "paseto",
        ])
        .usage();
}

// A node that joins a database another node created has no admin token file
// of its own: its banner says where the token is instead of naming a file
// that does not exist, and offers no command that reads it.
#[test]
fn a_joining_node_names_the_admin_token_of_the_first() {
    let server = Server::start();
    let database = format!(
        "sqlite://{}",
        server.dir.path("tessera-data/tessera.db").display()
    );
    let kek = server.dir.path("tessera-data/kek").display().to_string();
    let (child, url) = Server::spawn(
        &server.dir,
        "second-node",
        &[
            ("TESSERA_SERVER_DATABASE_URL", &database),
            ("TESSERA_KEYS_KEK_FILE", &kek),
        ],
        "join",
    );
    let mut second = Server {
        dir: Dir::new(),
        child,
        url,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http()
        .get(format!("{}/readyz", second.url))
        .send()
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(
            second.child.try_wait().unwrap().is_none(),
            "{}",
            server.dir.read("join.err")
        );
        assert!(Instant::now() < deadline, "{}", server.dir.read("join.err"));
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = second.child.kill();
    let _ = second.child.wait();
    let banner = server.dir.read("join.out");
    assert!(
        !server.dir.path("second-node/admin.token").exists(),
        "{banner}"
    );
    assert!(
        banner.contains("the one the node that created this database wrote"),
        "{banner}"
    );
    assert!(!banner.contains("cat second-node/admin.token"), "{banner}");
    // The first node's banner names its own file.
    let first = server.dir.read("serve.out");
    assert!(
        first.contains("admin token written to tessera-data/admin.token"),
        "{first}"
    );
}

// Metadata the server does not accept is a refusal (exit 1) with its code.
#[test]
fn clients_create_refused_metadata_exits_1() {
    let server = Server::start();
    server.dir.es256();
    for extra in [
        &["--grant-type", "password"][..],
        &["--ttl", "2h"][..],
        &["--ttl", "0s"][..],
        &["--claim", "iss=https://evil.example.com"][..],
        &["--scope", "bad\"scope"][..],
        // jwks is only for private_key_jwt.
        &["--auth-method", "client_secret_post", "--jwks", "jwks.json"][..],
    ] {
        let mut args = vec!["clients", "create", "--name", "x"];
        args.extend_from_slice(extra);
        server.admin(&args).refused("invalid_client_metadata");
    }
    server
        .admin(&["clients", "create", "--name", " "])
        .refused("invalid_client_metadata");
}

// Bad flags are usage errors (exit 2), found before anything is sent.
#[test]
fn clients_bad_flags_are_usage_errors() {
    let server = Server::start();
    server.dir.write("not-json.json", "{\"keys\": [");
    server.dir.write(
        "hs.json",
        r#"{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0","alg":"HS256"}"#,
    );
    for args in [
        &["clients", "create"][..],
        &["clients", "create", "--name", "x", "--auth-method", "none"][..],
        &["clients", "create", "--name", "x", "--claim", "tenant"][..],
        &["clients", "create", "--name", "x", "--claim", "=acme"][..],
        &["clients", "create", "--name", "x", "--ttl", "1500ms"][..],
        &["clients", "create", "--name", "x", "--ttl", "soon"][..],
        &["clients", "create", "--name", "x", "--jwks", "missing.json"][..],
        &[
            "clients",
            "create",
            "--name",
            "x",
            "--jwks",
            "not-json.json",
        ][..],
        &["clients", "create", "--name", "x", "--jwks", "hs.json"][..],
        &["clients", "delete"][..],
        &["clients", "delete", ".."][..],
        &["clients", "delete", ""][..],
        &["clients", "list", "extra"][..],
        &["clients", "frobnicate"][..],
    ] {
        server.admin(args).usage();
    }
    let list = server.admin(&["clients", "list"]).valid();
    let names: Vec<&str> = list["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| str_of(c, "client_name"))
        .collect();
    assert_eq!(names, ["quickstart"], "nothing registered");
}

// ---------------------------------------------------------------------------
// keys list | rotate | compromised
// ---------------------------------------------------------------------------

// A fresh authority has one active ES256 key and its successor, pending;
// both are published.
#[test]
fn keys_list_shows_one_active_es256_key() {
    let server = Server::start();
    let keys = server.keys();
    assert_eq!(keys.len(), 2, "{keys:#?}");
    assert!(keys.iter().all(|k| k["alg"] == "ES256"), "{keys:#?}");
    let active = server.kid_in("active");
    let pending = server.kid_in("pending");
    for k in &keys {
        let signing = k["kid"] == active.as_str();
        assert_eq!(k["activated_at"].is_i64(), signing, "{keys:#?}");
    }
    let mut published = server.jwks_kids();
    published.sort_unstable();
    let mut expected = vec![active, pending];
    expected.sort_unstable();
    assert_eq!(published, expected);
}

// rotate reports the pending key, published from the start, which signs
// after the prepublish delay (the active one keeps signing); --immediate
// makes the pending key active, retires the old one and publishes the next.
#[test]
fn keys_rotate_adds_a_pending_key_and_immediate_activates_one() {
    let server = Server::start();
    let first = server.kid_in("active");
    let published_at_start = server.kid_in("pending");

    let out = server.admin(&["keys", "rotate"]).valid();
    let rotations = out["rotations"].as_array().unwrap();
    assert_eq!(rotations.len(), 1, "{out:#}");
    assert_eq!(rotations[0]["alg"], "ES256");
    let pending = str_of(&rotations[0], "kid").to_owned();
    assert_ne!(pending, first);
    assert_eq!(pending, published_at_start);
    assert_eq!(server.kid_in("pending"), pending);
    assert_eq!(server.kid_in("active"), first);
    let published = server.jwks_kids();
    assert!(
        published.contains(&first) && published.contains(&pending),
        "{published:?}"
    );

    let out = server
        .admin(&["keys", "rotate", "--alg", "ES256", "--immediate"])
        .valid();
    let rotation = &out["rotations"][0];
    assert_eq!(rotation["kid"], pending.as_str(), "{out:#}");
    assert_eq!(rotation["retired"], first.as_str(), "{out:#}");
    assert_eq!(server.kid_in("active"), pending);
    assert_eq!(server.kid_in("retired"), first);

    // Once more: the key published at that switch signs at once.
    let next = server.kid_in("pending");
    let out = server.admin(&["keys", "rotate", "--immediate"]).valid();
    let fresh = str_of(&out["rotations"][0], "kid").to_owned();
    assert!(fresh != first && fresh != pending, "{out:#}");
    assert_eq!(fresh, next, "{out:#}");
    assert_eq!(server.kid_in("active"), fresh);
}

// An algorithm the server is not configured for is refused (exit 1); one
// that is not a JWS algorithm is a usage error.
#[test]
fn keys_rotate_refusals() {
    let server = Server::start();
    let before = server.keys();
    server
        .admin(&["keys", "rotate", "--alg", "ES384"])
        .refused("invalid_request");
    for alg in ["none", "es256", "XX256"] {
        server.admin(&["keys", "rotate", "--alg", alg]).usage();
    }
    server.admin(&["keys", "rotate", "--now"]).usage();
    assert_eq!(server.keys(), before, "nothing rotated");
}

// compromised removes the key from the JWKS at once and its successor,
// published before, signs, while the next key is published; an unknown kid
// (or one already removed) is refused.
#[test]
fn keys_compromised_removes_the_key_from_the_jwks() {
    let server = Server::start();
    let kid = server.kid_in("active");
    let pending = server.kid_in("pending");
    assert!(server.jwks_kids().contains(&kid));

    let out = server.admin(&["keys", "compromised", &kid]).valid();
    assert_eq!(out["kid"], kid.as_str());
    assert_eq!(out["state"], "compromised");
    let successor = str_of(&out, "successor").to_owned();
    assert_eq!(successor, pending);
    let next = server.kid_in("pending");
    assert!(next != kid && next != successor);
    let mut published = server.jwks_kids();
    published.sort_unstable();
    let mut expected = vec![successor.clone(), next];
    expected.sort_unstable();
    assert_eq!(published, expected);
    assert_eq!(server.kid_in("active"), successor);

    server
        .admin(&["keys", "compromised", &kid])
        .refused("not_found");
    server
        .admin(&["keys", "compromised", "no-such-kid"])
        .refused("not_found");
    server.admin(&["keys", "compromised"]).usage();
    let mut still = server.jwks_kids();
    still.sort_unstable();
    assert_eq!(still, expected);
}

// ---------------------------------------------------------------------------
// revoke --sub | --client | --kid
// ---------------------------------------------------------------------------

// revoke --client makes the client's tokens inactive at once; --kid marks
// the key compromised; exactly one target must be named.
#[test]
fn revoke_everything_of_a_client_or_key() {
    let server = Server::start();
    let client = server.create_client("orders", &[]);
    let (id, secret) = (
        str_of(&client, "client_id"),
        str_of(&client, "client_secret"),
    );
    let (status, body) = server.token(id, secret);
    assert_eq!(status, 200, "{body:#}");
    let token = str_of(&body, "access_token");
    let active = || {
        http()
            .post(format!("{}/introspect", server.url))
            .basic_auth(id, Some(secret))
            .form(&[("token", token)])
            .send()
            .unwrap()
            .json_value()["active"]
            .clone()
    };
    assert_eq!(active(), true);

    let out = server.admin(&["revoke", "--client", id]).valid();
    assert_eq!(out["client_id"], id);
    assert!(out["seq"].as_i64().unwrap() > 0, "{out:#}");
    assert_eq!(active(), false);

    let kid = server.kid_in("active");
    let out = server.admin(&["revoke", "--kid", &kid]).valid();
    assert_eq!(out["state"], "compromised");
    assert_ne!(server.kid_in("active"), kid);
    server
        .admin(&["revoke", "--kid", "no-such-kid"])
        .refused("not_found");
    server.admin(&["revoke"]).usage();
    server
        .admin(&["revoke", "--sub", "alice", "--client", id])
        .usage();
}

// ---------------------------------------------------------------------------
// The admin token and the server's address
// ---------------------------------------------------------------------------

// A wrong admin token is refused with invalid_token by every command, and
// the token is not printed.
#[test]
fn wrong_admin_token_is_refused_with_invalid_token() {
    let server = Server::start();
    server.dir.write("wrong.token", "tat_not-the-admin-token\n");
    let kid = server.kid_in("active");
    for args in [
        &["clients", "create", "--name", "x"][..],
        &["clients", "list"][..],
        &["clients", "delete", "tc_x"][..],
        &["keys", "list"][..],
        &["keys", "rotate"][..],
        &["keys", "compromised", &kid][..],
    ] {
        let run = server.admin_with_token("wrong.token", args);
        run.refused("invalid_token");
        assert!(!run.stderr.contains("not-the-admin-token"), "{run:#?}");
    }
    assert_eq!(server.kid_in("active"), kid, "nothing changed");
}

// A token file that is missing, empty, a folder, or holds something that
// is not a token: exit 2, naming the file and never its contents.
#[test]
fn unreadable_admin_token_file_is_a_usage_error() {
    let server = Server::start();
    server.dir.write("empty.token", "");
    server.dir.write("blank.token", " \n\t\n");
    server.dir.write("spaced.token", "tat_one two\n");
    server.dir.write("binary.token", b"tat_\xff\xfe");
    std::fs::create_dir(server.dir.path("folder.token")).unwrap();
    for file in [
        "missing.token",
        "empty.token",
        "blank.token",
        "spaced.token",
        "binary.token",
        "folder.token",
    ] {
        let run = server.admin_with_token(file, &["keys", "list"]);
        run.usage();
        assert!(run.stderr.contains(file), "{run:#?}");
        assert!(!run.stderr.contains("tat_one"), "{run:#?}");
    }
}

// Without flags, the admin commands use ./tessera-data/admin.token and
// TESSERA_SERVER; --server wins over TESSERA_SERVER.
#[test]
fn defaults_token_file_and_tessera_server_env() {
    let server = Server::start();
    let run = |env_server: &str, args: &[&str]| {
        Run::of(
            server
                .dir
                .command(args)
                .env("TESSERA_SERVER", env_server)
                .stdin(Stdio::null())
                .output()
                .unwrap(),
        )
    };
    let keys = run(&server.url, &["keys", "list"]).valid();
    // The active key and the next one.
    assert_eq!(keys["keys"].as_array().unwrap().len(), 2, "{keys:#}");
    let port = free_port();
    let elsewhere = format!("http://127.0.0.1:{port}");
    run(&elsewhere, &["keys", "list", "--server", &server.url]).valid();
    let unreachable = run(&elsewhere, &["keys", "list"]);
    unreachable.usage();
    assert!(unreachable.stderr.contains(&elsewhere), "{unreachable:#?}");
    // Without TESSERA_SERVER, the default is http://127.0.0.1:8080, which
    // this test cannot rely on; a bad TESSERA_SERVER is a usage error.
    run("ftp://127.0.0.1", &["keys", "list"]).usage();
}

// Nothing listening: exit 2, and the token is not in the message.
#[test]
fn server_not_running_is_a_usage_error() {
    let dir = Dir::new();
    dir.write("admin.token", "tat_secret-admin-token\n");
    let url = format!("http://127.0.0.1:{}", free_port());
    for args in [
        &["keys", "list"][..],
        &["keys", "rotate", "--immediate"][..],
        &["clients", "list"][..],
        &["clients", "create", "--name", "x"][..],
    ] {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--server", &url, "--admin-token-file", "admin.token"]);
        let run = dir.run(&all);
        run.usage();
        assert!(run.stderr.contains("cannot reach"), "{run:#?}");
        assert!(!run.stderr.contains("secret-admin-token"), "{run:#?}");
    }
}

/// Runs `keys list` against a one-shot server answering `status` + `body`;
/// returns the run and the request the server received.
fn against_one_shot(status: &'static str, body: &str) -> (Run, String) {
    let dir = Dir::new();
    dir.write("admin.token", "tat_one-shot\n");
    let (url, request) = serve_once(status, body.to_owned());
    let base = url.trim_end_matches("/jwks.json");
    let run = dir.run(&[
        "keys",
        "list",
        "--server",
        base,
        "--admin-token-file",
        "admin.token",
    ]);
    let request = request.recv_timeout(Duration::from_secs(10)).unwrap();
    (run, request)
}

// The request carries the trimmed token as a bearer token; a 5xx is exit 2
// with the server's code; a 4xx without an RFC 6749 body is still a
// refusal; a success that is not JSON or a redirect is exit 2.
#[test]
fn server_answers_other_than_json_success() {
    let (run, request) = against_one_shot(
        "500 Internal Server Error",
        r#"{"error":"server_error","error_description":"the log has the detail"}"#,
    );
    run.usage();
    assert!(run.stderr.contains("server_error"), "{run:#?}");
    assert!(
        request.starts_with("GET /admin/keys HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request
            .lines()
            .any(|l| l.eq_ignore_ascii_case("authorization: Bearer tat_one-shot")),
        "{request}"
    );

    let (run, _) = against_one_shot("405 Method Not Allowed", "");
    run.refused("HTTP 405");
    let (run, _) = against_one_shot("200 OK", "<html>");
    run.usage();
    let (run, _) = against_one_shot("302 Found", "");
    run.usage();
    assert!(run.stderr.contains("redirect"), "{run:#?}");
}

// --server must be http(s), carry no credentials, and use https unless it
// is this machine: the admin token is a bearer secret.
#[test]
fn bad_server_url_is_a_usage_error() {
    let dir = Dir::new();
    dir.write("admin.token", "tat_x\n");
    for server in [
        "http://admin.example.com",
        "http://10.0.0.1:8080",
        "http://admin:pw@127.0.0.1:8080",
        "http://127.0.0.1:8080/?debug=1",
        "ftp://127.0.0.1",
        "127.0.0.1:8080",
        "not a url",
    ] {
        let run = dir.run(&[
            "keys",
            "list",
            "--server",
            server,
            "--admin-token-file",
            "admin.token",
        ]);
        run.usage();
        assert!(run.stderr.contains("--server"), "{run:#?}");
        assert!(!run.stderr.contains("pw@"), "{run:#?}");
    }
}

// ---------------------------------------------------------------------------
// tessera serve: bad settings
// ---------------------------------------------------------------------------

/// Runs `tessera serve` that must exit on its own (killed after 30 s).
fn serve_exits(dir: &Dir, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let mut cmd: Command = dir.command(&all);
    for (name, value) in env {
        cmd.env(name, value);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("tessera serve {args:?} kept running: {:?}", Run::of(out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Run::of(child.wait_with_output().unwrap())
}

/// `serve --config bad.toml` (with and without `--data`) exits 2, names
/// each of `expected` on stderr, and creates no data folder.
fn serve_refuses(toml: &str, env: &[(&str, &str)], expected: &[&str]) {
    for data in [None, Some("data")] {
        let dir = Dir::new();
        dir.write("bad.toml", toml);
        let mut args = vec!["--config", "bad.toml"];
        if let Some(data) = data {
            args.extend_from_slice(&["--data", data]);
        }
        let run = serve_exits(&dir, &args, env);
        run.usage();
        for word in expected {
            assert!(run.stderr.contains(word), "{word}: {run:#?}");
        }
        for folder in ["tessera-data", "data"] {
            assert!(!dir.path(folder).exists(), "{folder} created: {run:#?}");
        }
    }
}

#[test]
fn serve_config_that_is_not_toml_exits_2() {
    serve_refuses("[server\nlisten =", &[], &["bad.toml", "not valid TOML"]);
}

#[test]
fn serve_unknown_setting_exits_2_naming_it() {
    serve_refuses("[server]\ncolour = 1\n", &[], &["server.colour"]);
}

// The authority signs with asymmetric keys only, whatever the source of
// the setting.
#[test]
fn serve_hs256_from_the_environment_exits_2_naming_the_setting() {
    serve_refuses(
        "",
        &[("TESSERA_KEYS_ALGORITHMS", "HS256")],
        &["keys.algorithms", "HS256"],
    );
}

/// A thumbprint kid can begin with '-' (base64url); it must not be taken
/// for a flag (found when a test run drew such a kid).
#[test]
fn keys_compromised_takes_a_kid_that_starts_with_a_hyphen() {
    let dir = Dir::new();
    dir.write("admin.token", "tat_x\n");
    let token = dir.path("admin.token");
    // Nothing listens there: the kid parsed, then the call failed to connect.
    let out = dir.run(&[
        "keys",
        "compromised",
        "-DxYzAbC",
        "--server",
        "http://127.0.0.1:9",
        "--admin-token-file",
        token.to_str().unwrap(),
    ]);
    out.usage();
    assert!(
        !out.stderr.contains("unexpected argument"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("cannot reach"), "{}", out.stderr);
}
