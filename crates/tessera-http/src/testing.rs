//! Test support for servers built on this crate: HTTP/1.1 over a raw
//! socket, so a test can do what an HTTP client library never would (send
//! half a request line, hold a connection idle, watch it being closed).
//!
//! Every read waits at most [`PATIENCE`]; running out is an error.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long a read waits for something that must happen.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// One response as read off the socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The status line and headers, header names as sent.
    pub head: String,
    /// The body (chunked framing left in place).
    pub body: String,
}

/// Sends `GET path` on `s` and reads the response.
///
/// # Errors
/// A socket error, a close before a whole response, or [`PATIENCE`] out.
pub async fn get(s: &mut TcpStream, path: &str) -> io::Result<Answer> {
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n").as_bytes())
        .await?;
    read_response(s).await
}

/// Reads one response with a `content-length` or chunked body.
///
/// # Errors
/// A socket error, a close before a whole response, or [`PATIENCE`] out.
pub async fn read_response(s: &mut TcpStream) -> io::Result<Answer> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        read_some(s, &mut buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let lower = head.to_ascii_lowercase();
    let chunked = lower.contains("\r\ntransfer-encoding: chunked\r\n");
    let length = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, head.clone()))?;
    let mut body = buf.split_off(head_end);
    loop {
        let done = if chunked {
            body.ends_with(b"0\r\n\r\n")
        } else {
            body.len() >= length
        };
        if done {
            break;
        }
        read_some(s, &mut body).await?;
    }
    Ok(Answer {
        status,
        head,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Waits for the peer to close `s`; what it sent before closing. A reset
/// counts as closed.
///
/// # Errors
/// Still open after [`PATIENCE`] (`TimedOut`), or another socket error.
pub async fn closed(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut got = Vec::new();
    match tokio::time::timeout(PATIENCE, s.read_to_end(&mut got)).await {
        Ok(Ok(_)) => Ok(got),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => Ok(got),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("still open after {PATIENCE:?}"),
        )),
    }
}

/// Opens connections to `addr` and sends `GET path` on each until one is
/// answered other than 503 (the connection limit frees a slot once the
/// server has noticed a close); that answer.
///
/// # Errors
/// Still refused after [`PATIENCE`], or a socket error.
pub async fn until_admitted(addr: SocketAddr, path: &str) -> io::Result<Answer> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut c = TcpStream::connect(addr).await?;
        match get(&mut c, path).await {
            Ok(a) if a.status != 503 => return Ok(a),
            // Refused: a 503, or a reset under it.
            Ok(_) => {}
            Err(e) if e.kind() != io::ErrorKind::TimedOut => {}
            Err(e) => return Err(e),
        }
        if tokio::time::Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "still refused: the slot never came back",
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn read_some(s: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut chunk = [0u8; 4096];
    let n = tokio::time::timeout(PATIENCE, s.read(&mut chunk))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no response"))??;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "closed before a whole response: {:?}",
                String::from_utf8_lossy(buf)
            ),
        ));
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}
