//! [`TcpProxy`]: a loopback TCP forwarder a test can cut and restore, to
//! make a database (or any server) disappear the way a stopped one does,
//! without stopping what other tests share: while cut, connections to it
//! are refused and the ones open through it are closed.

use std::net::SocketAddr;
use std::sync::Mutex;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// A forwarder from a fixed loopback port to `upstream`.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    /// The accepting task while the proxy is up; it owns every forwarding
    /// task, so aborting it closes them all.
    running: Mutex<Option<JoinHandle<()>>>,
}

impl TcpProxy {
    /// A proxy to `upstream` on a free loopback port, up.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = listen("127.0.0.1:0".parse().unwrap());
        let addr = listener.local_addr().unwrap();
        Self {
            addr,
            upstream,
            running: Mutex::new(Some(tokio::spawn(serve(listener, upstream)))),
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts: from its return, a connection is refused, and every
    /// connection made through the proxy is closed.
    pub async fn cut(&self) {
        let task = self.running.lock().unwrap().take();
        if let Some(task) = task {
            task.abort();
            // Cancelled: the listener and the forwarders are dropped.
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    pub fn restore(&self) {
        let mut running = self.running.lock().unwrap();
        if running.is_none() {
            *running = Some(tokio::spawn(serve(listen(self.addr), self.upstream)));
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(task) = self.running.lock().unwrap().take() {
            task.abort();
        }
    }
}

/// A listener on `addr`, reusable at once after the last one closed.
fn listen(addr: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(addr).unwrap();
    socket.listen(128).unwrap()
}

/// Accepts and forwards until aborted; the forwarders end with it.
async fn serve(listener: TcpListener, upstream: SocketAddr) {
    let mut forwarders = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((inbound, _)) = accepted else { continue };
                forwarders.spawn(forward(inbound, upstream));
            }
            // Reap finished forwarders so the set does not grow.
            Some(_) = forwarders.join_next(), if !forwarders.is_empty() => {}
        }
    }
}

/// Copies both ways until either side closes.
async fn forward(mut inbound: TcpStream, upstream: SocketAddr) {
    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// An upstream that answers each connection with one byte.
    async fn upstream() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let _ = s.write_all(b"!").await;
                    let mut rest = Vec::new();
                    let _ = s.read_to_end(&mut rest).await;
                });
            }
        });
        addr
    }

    async fn first_byte(s: &mut TcpStream) -> Option<u8> {
        let mut b = [0u8; 1];
        match s.read(&mut b).await {
            Ok(1) => Some(b[0]),
            _ => None,
        }
    }

    #[tokio::test]
    async fn cut_refuses_and_closes_restore_forwards_again() {
        let proxy = TcpProxy::start(upstream().await).await;
        let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(first_byte(&mut open).await, Some(b'!'));

        proxy.cut().await;
        assert_eq!(first_byte(&mut open).await, None, "closed by the cut");
        let refused = TcpStream::connect(proxy.addr()).await.unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

        proxy.restore();
        let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(first_byte(&mut again).await, Some(b'!'));
    }
}
