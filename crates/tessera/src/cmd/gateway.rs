//! `tessera gateway`: settings first (a bad one exits 2), then the proxy
//! until Ctrl-C or SIGTERM (then a graceful shutdown, bounded by
//! `shutdown_timeout`).

use anyhow::{Context as _, Result};
use tessera_gateway::{Gateway, GatewayConfig, GatewayOverrides};

use crate::cli::GatewayArgs;
use crate::exit;

pub(crate) fn run(args: GatewayArgs) -> Result<u8> {
    let overrides = GatewayOverrides {
        listen: args.listen,
        mode: args.mode,
        upstream: args.upstream,
        issuer: args.issuer,
        audience: args.audience,
        forward_token: args.forward_token,
        upstream_timeout: args.upstream_timeout,
    };
    let config = match GatewayConfig::load(args.config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tessera: gateway config: {e}");
            return Ok(exit::USAGE);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let what = match &config.mode {
            tessera_gateway::Mode::Authz(flavor) => format!("deciding for {flavor}"),
            _ => format!("forwarding to {}", config.upstream),
        };
        let issuer = config.issuer.clone();
        let gateway = Gateway::new(config)
            .await
            .context("tessera gateway could not start")?;
        let (addr, task) = gateway
            .serve(tessera_http::shutdown_signal())
            .await
            .context("tessera gateway could not start")?;
        println!("tessera gateway: listening on http://{addr}, {what}, tokens from {issuer}");
        task.await.context("gateway failed")?;
        Ok(exit::OK)
    })
}
