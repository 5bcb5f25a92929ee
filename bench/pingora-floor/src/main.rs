//! A bare Pingora reverse proxy: every request to one upstream, keep-alive
//! pooled, nothing else. Usage: `pingora-floor LISTEN_ADDR UPSTREAM_ADDR
//! THREADS`.

use async_trait::async_trait;
use pingora_core::server::Server;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::Result;
use pingora_proxy::{ProxyHttp, Session};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Floor {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream), threads) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: pingora-floor LISTEN_ADDR UPSTREAM_ADDR [THREADS]");
        std::process::exit(2);
    };
    let Ok(mut server) = Server::new(None) else {
        eprintln!("pingora-floor: no server");
        std::process::exit(1);
    };
    if let Some(conf) = std::sync::Arc::get_mut(&mut server.configuration) {
        conf.threads = threads.and_then(|t| t.parse().ok()).unwrap_or(2);
    }
    server.bootstrap();
    let mut proxy = pingora_proxy::http_proxy_service(&server.configuration, Floor { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
