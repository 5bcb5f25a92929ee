//! `tessera gateway` as a process: a bad setting exits 2 naming it before
//! anything starts, an authority out of reach exits 2 saying it could not
//! start, and with good settings in front of an in-process authority it
//! prints its listening line, proxies what a token admits, refuses the
//! rest, and exits 0 on SIGTERM.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use tessera_testkit::{Backend, TestServer, PATIENCE};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::Dir;

/// The flags every run needs besides `--issuer`.
fn flags<'a>(upstream: &'a str, audience: &'a str) -> Vec<&'a str> {
    vec![
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        upstream,
        "--audience",
        audience,
    ]
}

#[test]
fn a_bad_setting_exits_2_naming_it() {
    let dir = Dir::new();
    let cases = [
        (
            "revocations_catch_up = \"soon\"\n",
            "tessera: gateway config: revocations_catch_up: \"soon\": expected number",
        ),
        (
            "bogus = 1\n",
            "tessera: gateway config: gw.toml: unknown field `bogus`",
        ),
    ];
    for (toml, message) in cases {
        dir.write("gw.toml", toml);
        let mut args = flags("http://127.0.0.1:9", "orders-api");
        args.extend(["--config", "gw.toml", "--issuer", "http://127.0.0.1:9"]);
        let run = dir.run(&args);
        run.usage();
        assert!(run.stderr.starts_with(message), "{toml}: {run:#?}");
    }
    // A required setting missing: named, with an example.
    let run = dir.run(&["gateway", "--issuer", "http://127.0.0.1:9"]);
    run.usage();
    assert!(
        run.stderr
            .starts_with("tessera: gateway config: upstream: is required (--upstream "),
        "{run:#?}"
    );
}

#[test]
fn an_authority_out_of_reach_exits_2_before_listening() {
    let dir = Dir::new();
    // A port nothing listens on: bound, then let go.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let mut args = flags("http://127.0.0.1:9", "orders-api");
    args.extend(["--issuer", &closed]);
    let run = dir.run(&args);
    run.usage();
    assert!(
        run.stderr
            .starts_with("tessera: tessera gateway could not start: issuer: discovery: "),
        "{run:#?}"
    );
}

/// A child process, killed if the test ends before it does.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An upstream that answers every request `upstream saw <path>` and closes.
async fn upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut c, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split(' ').nth(1).unwrap_or("?");
                let body = format!("upstream saw {path}");
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = c.write_all(answer.as_bytes()).await;
            });
        }
    });
    url
}

#[cfg(unix)] // SIGTERM
#[tokio::test(flavor = "multi_thread")]
async fn in_front_of_an_authority_it_says_where_it_listens_proxies_and_stops_on_sigterm() {
    let backend = Backend::sqlite();
    let auth = TestServer::start_live(&backend).await;
    let (id, secret) = auth.quickstart();
    let token = auth.token(id, secret).await;
    let upstream = upstream().await;

    let dir = Dir::new();
    let mut args = flags(&upstream, &auth.issuer);
    args.extend(["--issuer", &auth.issuer]);
    let mut gateway = Proc(
        dir.command(&args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path("gw.out")).unwrap())
            .stderr(std::fs::File::create(dir.path("gw.err")).unwrap())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    let line = loop {
        if let Some(line) = dir.read("gw.out").lines().next() {
            break line.to_owned();
        }
        if let Some(status) = gateway.0.try_wait().unwrap() {
            panic!("tessera gateway exited ({status}): {}", dir.read("gw.err"));
        }
        assert!(started.elapsed() < PATIENCE, "no listening line");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let addr = line
        .strip_prefix("tessera gateway: listening on http://")
        .and_then(|rest| rest.split_once(','))
        .map(|(addr, _)| addr.to_owned())
        .unwrap_or_else(|| panic!("{line}"));
    assert_eq!(
        line,
        format!(
            "tessera gateway: listening on http://{addr}, forwarding to {upstream}, tokens from {}",
            auth.issuer
        )
    );

    // A token of the authority's for this audience goes through...
    let resp = auth
        .http
        .get(format!("http://{addr}/orders/7"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "upstream saw /orders/7");
    // ...and a request without one is refused by the gateway itself.
    let resp = auth
        .http
        .get(format!("http://{addr}/orders/7"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"tessera\""
    );

    let kill = std::process::Command::new("kill")
        .args(["-TERM", &gateway.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let asked = Instant::now();
    let status = loop {
        if let Some(status) = gateway.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            asked.elapsed() < PATIENCE,
            "still running {PATIENCE:?} after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0), "{}", dir.read("gw.err"));
    assert!(
        !dir.read("gw.err").contains("panicked"),
        "{}",
        dir.read("gw.err")
    );
    auth.stop().await;
}

#[test]
fn authz_mode_settings_are_checked_before_anything_starts() {
    let dir = Dir::new();
    dir.write("nginx.toml", "[authz]\nflavor = \"nginx\"\n");
    let base = [
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--issuer",
        "http://127.0.0.1:9",
        "--audience",
        "orders-api",
    ];
    for (extra, message) in [
        (
            &["--mode", "authz"][..],
            "tessera: gateway config: authz.flavor: is required in authz mode",
        ),
        (
            &[
                "--mode",
                "authz",
                "--config",
                "nginx.toml",
                "--upstream",
                "http://127.0.0.1:9000",
            ][..],
            "tessera: gateway config: upstream: is not used in authz mode",
        ),
        (
            &[
                "--config",
                "nginx.toml",
                "--upstream",
                "http://127.0.0.1:9000",
            ][..],
            "tessera: gateway config: authz: is a section of mode = \"authz\" only",
        ),
        (
            &["--mode", "sidecar", "--upstream", "http://127.0.0.1:9000"][..],
            "tessera: gateway config: mode: \"sidecar\" is not proxy or authz",
        ),
    ] {
        let mut args = base.to_vec();
        args.extend(extra);
        let run = dir.run(&args);
        run.usage();
        assert!(run.stderr.starts_with(message), "{extra:?}: {run:#?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn in_authz_mode_it_says_so_and_answers_the_proxy() {
    let backend = Backend::sqlite();
    let auth = TestServer::start_live(&backend).await;
    let (id, secret) = auth.quickstart();
    let token = auth.token(id, secret).await;

    let dir = Dir::new();
    dir.write("gw.toml", "[authz]\nflavor = \"nginx\"\n");
    let args = [
        "gateway",
        "--mode",
        "authz",
        "--config",
        "gw.toml",
        "--listen",
        "127.0.0.1:0",
        "--issuer",
        &auth.issuer,
        "--audience",
        &auth.issuer,
    ];
    let mut gateway = Proc(
        dir.command(&args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path("gw.out")).unwrap())
            .stderr(std::fs::File::create(dir.path("gw.err")).unwrap())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    let line = loop {
        if let Some(line) = dir.read("gw.out").lines().next() {
            break line.to_owned();
        }
        if let Some(status) = gateway.0.try_wait().unwrap() {
            panic!("tessera gateway exited ({status}): {}", dir.read("gw.err"));
        }
        assert!(started.elapsed() < PATIENCE, "no listening line");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let addr = line
        .strip_prefix("tessera gateway: listening on http://")
        .and_then(|rest| rest.split_once(','))
        .map(|(addr, _)| addr.to_owned())
        .unwrap_or_else(|| panic!("{line}"));
    assert_eq!(
        line,
        format!(
            "tessera gateway: listening on http://{addr}, deciding for nginx auth_request, tokens from {}",
            auth.issuer
        )
    );
    let ask = |bearer: Option<&str>| {
        let mut req = auth
            .http
            .get(format!("http://{addr}/_tessera_authz"))
            .header("X-Original-Method", "GET")
            .header("X-Original-URI", "/orders/7");
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let resp = ask(Some(&token)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-tessera-subject"));
    assert_eq!(resp.text().await.unwrap(), "", "a decision has no body");
    let resp = ask(None).await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"tessera\""
    );
    drop(gateway);
    auth.stop().await;
}
