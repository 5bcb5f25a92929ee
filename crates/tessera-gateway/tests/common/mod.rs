//! Shared by the gateway's tests: a gateway in front of a real authority, and
//! the raw edge (`edge`: byte-exact requests, a recording upstream).

pub(crate) mod edge;

use std::net::SocketAddr;
use std::path::Path;

use tessera_gateway::{Gateway, GatewayConfig, GatewayOverrides};

/// Starts a gateway from `config_file` in front of `upstream`, for tokens
/// of `issuer` naming `audience` (unless a route names another); its
/// address. It runs until the test ends.
pub(crate) async fn start_gateway(
    config_file: &Path,
    issuer: &str,
    audience: &str,
    upstream: String,
) -> SocketAddr {
    let config = GatewayConfig::load(
        Some(config_file),
        &GatewayOverrides {
            listen: Some("127.0.0.1:0".into()),
            upstream: Some(upstream),
            issuer: Some(issuer.to_owned()),
            audience: Some(audience.to_owned()),
            ..GatewayOverrides::default()
        },
    )
    .unwrap();
    let (addr, _task) = Gateway::new(config)
        .await
        .unwrap()
        .serve(std::future::pending())
        .await
        .unwrap();
    addr
}
