//! `tessera serve` and `tessera gateway` on SIGTERM: a graceful stop that a
//! stalled client cannot hold up past `shutdown_timeout`.

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Dir;

/// How long the test waits for anything that must happen.
const PATIENCE: Duration = Duration::from_secs(30);
const DEADLINE: Duration = Duration::from_millis(300);

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

/// Sends SIGTERM with a client stalled half-way through a request head on
/// `addr`, and returns how long the process took to exit 0.
fn sigterm_with_a_stalled_client(p: &mut Proc, addr: &str, name: &str) -> Duration {
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled.write_all(b"GET /healthz HTTP/1.1\r\nho").unwrap();
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

    dir.write("gw.toml", "shutdown_timeout = \"300ms\"\n");
    let gw_listen = free_addr();
    let issuer = format!("http://{listen}");
    let gw_cmd = dir.command(&[
        "gateway",
        "--config",
        "gw.toml",
        "--listen",
        &gw_listen,
        "--upstream",
        "http://127.0.0.1:9",
        "--issuer",
        &issuer,
        "--audience",
        "orders-api",
    ]);
    let mut gateway = spawn(&dir, gw_cmd, "gateway");
    wait_for(&dir, &mut gateway, "gateway", "listening on");

    for (p, addr, name) in [
        (&mut gateway, &gw_listen, "gateway"),
        (&mut serve, &listen, "serve"),
    ] {
        let took = sigterm_with_a_stalled_client(p, addr, name);
        // It waited for the stalled client, then stopped waiting.
        assert!(took >= DEADLINE, "{name}: {took:?}");
    }
}
