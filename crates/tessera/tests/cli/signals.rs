//! `tessera serve` and `tessera gateway` on SIGTERM: a graceful stop that a
//! stalled client cannot hold up past `shutdown_timeout`.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Dir;

/// How long the test waits for anything that must happen.
const PATIENCE: Duration = Duration::from_secs(30);
const DEADLINE: Duration = Duration::from_millis(300);
/// Well past the deadline and well short of anything else that could end
/// the request (the gateway's 30 s upstream timeout).
const STOPPED: Duration = Duration::from_secs(10);

/// A child process, killed if the test ends before it does.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn spawn(dir: &Dir, mut cmd: Command, name: &str) -> Proc {
    let out = std::fs::File::create(dir.path(&format!("{name}.out"))).unwrap();
    let err = std::fs::File::create(dir.path(&format!("{name}.err"))).unwrap();
    Proc(
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap(),
    )
}

/// Waits until `name.out` holds `needle` (the start banner).
fn wait_for(dir: &Dir, p: &mut Proc, name: &str, needle: &str) {
    let until = Instant::now() + PATIENCE;
    while !dir.read(&format!("{name}.out")).contains(needle) {
        if let Some(status) = p.0.try_wait().unwrap() {
            panic!(
                "{name} exited ({status}): {}",
                dir.read(&format!("{name}.err"))
            );
        }
        assert!(
            Instant::now() < until,
            "{name}: no {needle:?} in its banner"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends SIGTERM while `stalled` holds a request in progress, and returns
/// how long the process took to exit 0.
fn sigterm_with_a_request_in_progress(p: &mut Proc, name: &str) -> Duration {
    let started = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &p.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    loop {
        if let Some(status) = p.0.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0), "{name}");
            return started.elapsed();
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{name} still running {PATIENCE:?} after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A request whose body never comes: `tessera serve`'s token endpoint
/// waits for it. A request head alone would not do: a connection with no
/// request in progress is closed at once on shutdown, and there would be
/// nothing to wait for.
fn stalled_token_request(addr: &str) -> TcpStream {
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(
        b"POST /token HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 29\r\n\r\ngrant_type=",
    )
    .unwrap();
    // Once a request sent after it is answered, this one has reached its
    // handler.
    let mut probe = TcpStream::connect(addr).unwrap();
    probe
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    probe.set_read_timeout(Some(PATIENCE)).unwrap();
    probe.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    c
}

#[test]
fn sigterm_stops_serve_and_gateway_by_their_shutdown_deadline() {
    let dir = Dir::new();
    let listen = free_addr();
    let metrics = free_addr();
    let mut serve_cmd = dir.command(&["serve", "--listen", &listen]);
    serve_cmd
        .env("TESSERA_SERVER_SHUTDOWN_TIMEOUT", "300ms")
        .env("TESSERA_SERVER_METRICS_LISTEN", &metrics);
    let mut serve = spawn(&dir, serve_cmd, "serve");
    wait_for(
        &dir,
        &mut serve,
        "serve",
        &format!("metrics on http://{metrics}/metrics"),
    );

    // The gateway's request is in progress for certain once the upstream,
    // which never answers, has read it.
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    dir.write(
        "gw.toml",
        "shutdown_timeout = \"300ms\"\n[[routes]]\nprefix = \"/public\"\npublic = true\n",
    );
    let gw_listen = free_addr();
    let issuer = format!("http://{listen}");
    let upstream_url = format!("http://{}", upstream.local_addr().unwrap());
    let gw_cmd = dir.command(&[
        "gateway",
        "--config",
        "gw.toml",
        "--listen",
        &gw_listen,
        "--upstream",
        &upstream_url,
        "--issuer",
        &issuer,
        "--audience",
        "orders-api",
    ]);
    let mut gateway = spawn(&dir, gw_cmd, "gateway");
    wait_for(&dir, &mut gateway, "gateway", "listening on");
    let mut client = TcpStream::connect(&gw_listen).unwrap();
    client
        .write_all(b"GET /public/slow HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let (mut forwarded, _) = upstream.accept().unwrap();
    forwarded.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut head = [0u8; 17];
    forwarded.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"GET /public/slow ");
    let took = sigterm_with_a_request_in_progress(&mut gateway, "gateway");
    // It waited for the request in progress, then stopped waiting.
    assert!(took >= DEADLINE && took < STOPPED, "gateway: {took:?}");

    let _stalled = stalled_token_request(&listen);
    let took = sigterm_with_a_request_in_progress(&mut serve, "serve");
    assert!(took >= DEADLINE && took < STOPPED, "serve: {took:?}");
    drop(client);
}
