//! Issue 13, forward auth through a real nginx: client -> nginx
//! (`auth_request`) -> `tessera gateway --mode authz` -> the recording
//! upstream, with exactly the configuration of `examples/nginx/` (its
//! three addresses replaced by free ports), so the README's configuration
//! is the tested one.
//!
//! nginx must be installed (`scripts/test` installs Debian's `nginx` when
//! it runs as root; `TESSERA_NGINX` names another binary). Without it the
//! test fails, saying so, unless `TESSERA_SKIP_NGINX=1` says to skip it.
#![allow(clippy::unwrap_used)] // test set-up: a failure should stop the test

#[path = "common/edge.rs"]
mod edge;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use edge::{send, token, Answer, Seen, Upstream};
use serde_json::json;

const SITE: &str = include_str!("../../../examples/nginx/tessera.conf");
const GATEWAY: &str = include_str!("../../../examples/nginx/gateway.toml");

/// The nginx binary: `TESSERA_NGINX`, else `nginx` on the `PATH` or in
/// `/usr/sbin` (Debian's, off a non-root user's `PATH`).
fn nginx_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TESSERA_NGINX") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `text` with `from` replaced by `to`, which must occur exactly once (so
/// the example cannot drift away from what the test replaces).
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} in the example");
    text.replace(from, to)
}

/// nginx in the foreground, as one process (no master, so no user switch
/// when the tests run as root), in a folder of its own; killed on drop.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Nginx {
    async fn start(binary: &Path, authz: SocketAddr, upstream: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let site = replace_once(SITE, "listen 80;", &format!("listen 127.0.0.1:{port};"));
        let site = replace_once(&site, "server 127.0.0.1:8000;", &format!("server {authz};"));
        let up = upstream.strip_prefix("http://").unwrap();
        let site = replace_once(&site, "server 127.0.0.1:9000;", &format!("server {up};"));
        std::fs::write(dir.path().join("tessera.conf"), site).unwrap();
        // What a distribution's nginx.conf holds around the site; every
        // path in the folder, so nothing needs root.
        let d = dir.path().display();
        let main = format!(
            "pid {d}/nginx.pid;\nerror_log stderr notice;\nevents {{}}\nhttp {{\n\
             access_log off;\nclient_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
             include {d}/tessera.conf;\n}}\n"
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, main).unwrap();
        let log = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off; master_process off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
        let mut nginx = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        let addr = nginx.addr;
        let up = tessera_testkit::eventually("nginx listens", || async move {
            tokio::net::TcpStream::connect(addr).await.ok().map(|_| ())
        });
        tokio::select! {
            () = up => {}
            exited = wait_exit(&mut nginx.child) => {
                panic!("nginx exited ({exited}) before listening:\n{}", nginx.log());
            }
        }
        nginx
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }
}

/// Resolves once the child has exited.
async fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("nginx's log:\n{}", self.log());
        }
    }
}

/// Every header of `seen` whose name, read as CGI servers read names
/// (letters and digits lower-cased, anything else `-`), is `name`.
fn read_as<'a>(seen: &'a Seen, name: &str) -> Vec<&'a str> {
    let fold = |n: &str| -> String {
        n.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    char::from(b.to_ascii_lowercase())
                } else {
                    '-'
                }
            })
            .collect()
    };
    seen.headers
        .iter()
        .filter(|(n, _)| fold(n) == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn challenge(a: &Answer) -> &str {
    a.all("www-authenticate")
        .first()
        .copied()
        .unwrap_or_else(|| panic!("no challenge: {a:?}"))
}

#[tokio::test]
async fn nginx_asks_tessera_and_forwards_only_what_it_admits() {
    let Some(binary) = nginx_binary() else {
        if std::env::var("TESSERA_SKIP_NGINX").as_deref() == Ok("1") {
            eprintln!("nginx not found; skipped as TESSERA_SKIP_NGINX=1 asks");
            return;
        }
        panic!(
            "nginx not found: ./scripts/test installs Debian's nginx when run as root \
             (apt-get install nginx); TESSERA_NGINX names another binary, \
             TESSERA_SKIP_NGINX=1 skips this test"
        );
    };
    let upstream = Upstream::start(&[]).await;
    let (authz, signer) = edge::authz(GATEWAY, false).await;
    let nginx = Nginx::start(&binary, authz, &upstream.url).await;
    let at = nginx.addr;
    let low = format!("Bearer {}", token(&signer, json!({"tenant_id": "acme"})));
    let admin = format!(
        "Bearer {}",
        token(
            &signer,
            json!({"aud": ["orders-api", "orders-admin"], "scope": "orders:admin"})
        )
    );
    let no_scope = format!(
        "Bearer {}",
        token(&signer, json!({"aud": ["orders-api", "orders-admin"]}))
    );

    // Admitted: the upstream gets the request target as written and the
    // identity from Tessera's answer, not the token.
    let a = send(at, b"GET /orders/7?x=1", &[("Authorization", &low)]).await;
    assert_eq!((a.status, a.body.as_str()), (200, "ok"), "{a:?}");
    let seen = upstream.last();
    assert_eq!(seen.target, "/orders/7?x=1");
    assert_eq!(seen.one("x-tessera-subject"), Some("svc-1"));
    let claims = tessera_jose::b64::decode(seen.one("x-tessera-claims").unwrap()).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&claims).unwrap();
    assert_eq!(claims["tenant_id"], "acme");
    assert_eq!(seen.one("authorization"), None, "the token was consumed");
    assert_eq!(seen.one("x-tessera-token"), None);
    assert_eq!(seen.one("x-original-uri"), None);
    assert_eq!(seen.one("host"), Some("gw.test"));

    // Every refusal reaches the client, and nothing reaches the upstream.
    let before = upstream.count();
    let a = send(at, b"GET /orders", &[]).await;
    assert_eq!(
        (a.status, challenge(&a)),
        (401, "Bearer realm=\"tessera\""),
        "nginx passes a 401's challenge on"
    );
    let a = send(at, b"GET /orders", &[("Authorization", "Bearer x.y.z")]).await;
    assert_eq!(a.status, 401);
    assert!(challenge(&a).contains("error=\"invalid_token\""), "{a:?}");
    let other = format!("Bearer {}", token(&signer, json!({"aud": "billing"})));
    let a = send(at, b"GET /orders", &[("Authorization", &other)]).await;
    assert_eq!(a.status, 401);
    assert!(challenge(&a).contains("audience_mismatch"), "{a:?}");
    let a = send(at, b"GET /admin/users", &[("Authorization", &low)]).await;
    assert_eq!(a.status, 401, "another audience");
    let a = send(at, b"GET /admin/users", &[("Authorization", &no_scope)]).await;
    assert_eq!(a.status, 403, "no scope");
    // Paths with another spelling than their canonical one: refused (400
    // at Tessera, which nginx answers 500), whatever the token.
    for line in [
        &b"GET /health/../admin/users"[..],
        b"GET /health/%2e%2e/admin/users",
        b"GET /health/.%2E/admin/users",
        b"GET //admin/users",
        b"GET /%61dmin/users",
        b"GET /health;/../admin/users",
        b"GET /health%2F..%2Fadmin/users",
    ] {
        let a = send(at, line, &[("Authorization", &low)]).await;
        assert_eq!(a.status, 500, "{}: {a:?}", String::from_utf8_lossy(line));
    }
    // The client's X-Original-URI (and another flavour's names) name
    // nothing: nginx replaces the one, Tessera does not read the others.
    let a = send(
        at,
        b"GET /admin/users",
        &[
            ("X-Original-URI", "/health"),
            ("X-Original-Method", "GET"),
            ("X-Forwarded-Uri", "/health"),
            ("X_Original_URI", "/health"),
        ],
    )
    .await;
    assert_eq!(a.status, 401);
    assert_eq!(
        upstream.count(),
        before,
        "a refused request reached the upstream"
    );

    // The positive controls of those refusals.
    let a = send(at, b"GET /admin/users", &[("Authorization", &admin)]).await;
    assert_eq!(a.status, 200);
    assert_eq!(upstream.last().target, "/admin/users");
    let a = send(at, b"GET /health", &[]).await;
    assert_eq!(a.status, 200, "a public route needs no token");
    let seen = upstream.last();
    assert_eq!(seen.target, "/health");
    assert!(read_as(&seen, "x-tessera-subject").is_empty());

    // Forged identity, in every spelling nginx lets through or not, on a
    // public and on a protected route: the upstream sees only Tessera's.
    let forged = [
        ("X-Tessera-Subject", "root"),
        ("x-tessera-subject", "root"),
        ("X_Tessera_Subject", "root"),
        ("X.Tessera.Subject", "root"),
        ("X-Tessera-Claims", "e30"),
        ("X_Tessera_Claims", "e30"),
        ("X-Tessera-Token", "forged"),
        ("X-Original-URL", "/admin"),
        ("X-Rewrite-URL", "/admin"),
        ("X-Forwarded-Prefix", "/admin"),
    ];
    let a = send(at, b"GET /health/live", &forged).await;
    assert_eq!(a.status, 200);
    let seen = upstream.last();
    assert_eq!(seen.target, "/health/live");
    for name in [
        "x-tessera-subject",
        "x-tessera-claims",
        "x-tessera-token",
        "x-original-url",
        "x-rewrite-url",
        "x-forwarded-prefix",
    ] {
        assert!(read_as(&seen, name).is_empty(), "{name} reached: {seen:?}");
    }
    let mut with_token = forged.to_vec();
    with_token.push(("Authorization", &low));
    let a = send(at, b"GET /orders", &with_token).await;
    assert_eq!(a.status, 200);
    let seen = upstream.last();
    assert_eq!(read_as(&seen, "x-tessera-subject"), ["svc-1"], "{seen:?}");
    assert_eq!(read_as(&seen, "x-tessera-claims").len(), 1, "{seen:?}");
    assert_ne!(read_as(&seen, "x-tessera-claims"), ["e30"]);
    assert!(read_as(&seen, "x-tessera-token").is_empty(), "{seen:?}");
    assert!(read_as(&seen, "authorization").is_empty(), "{seen:?}");

    // A request body is not Tessera's to read: it goes to the upstream only.
    let a = send(
        at,
        b"POST /orders",
        &[("Authorization", &low), ("Content-Length", "0")],
    )
    .await;
    assert_eq!(a.status, 200);
}

/// The README's nginx configuration is the tested file, word for word.
#[test]
fn the_readme_shows_the_tested_configuration() {
    let readme = include_str!("../../../README.md");
    assert!(
        readme.contains(&format!("```nginx\n{SITE}```\n")),
        "README.md's nginx block differs from examples/nginx/tessera.conf"
    );
}
