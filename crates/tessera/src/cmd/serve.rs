//! `tessera serve`: settings first (a bad one exits 2 before anything is
//! created), then the authority until Ctrl-C or SIGTERM.

use anyhow::{Context as _, Result};
use tessera_server::{Config, Overrides, StartOptions};

use crate::cli::ServeArgs;
use crate::exit;

pub(crate) fn run(args: ServeArgs) -> Result<u8> {
    let overrides = Overrides {
        data: args.data,
        listen: args.listen,
        issuer: args.issuer,
        database_url: args.database_url,
    };
    let config = match Config::load(args.config.as_deref(), std::env::vars(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tessera: config: {e}");
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
        let options = StartOptions {
            handle_signals: true,
            ..StartOptions::default()
        };
        let running = tessera_server::start(config, options)
            .await
            .context("tessera serve could not start")?;
        banner(&running);
        running.wait().await.context("server failed")?;
        Ok(exit::OK)
    })
}

fn banner(running: &tessera_server::Running) {
    let config = &running.config();
    let backend = if config.is_sqlite() {
        "SQLite"
    } else {
        "PostgreSQL"
    };
    println!("tessera serve: issuer {}", config.issuer);
    println!("  listening on http://{} ({backend})", running.addr);
    if let Some(metrics) = running.metrics_addr {
        println!("  metrics on http://{metrics}/metrics");
    }
    let admin = config.admin_token_file.display();
    // A node that joins a database another node created has no token file
    // of its own: the admin token is the one the first node wrote.
    let has_token_file = config.admin_token_file.exists();
    if running.created_admin_token {
        println!("  admin token written to {admin} (mode 0600; shown nowhere else)");
    } else if has_token_file {
        println!("  admin token: {admin} (from the first start)");
    } else {
        println!(
            "  admin token: the one the node that created this database wrote (its admin.token); this node has none at {admin}"
        );
    }
    let credentials = config.data.join("quickstart.credentials");
    if credentials.exists() {
        println!("get a token:");
        println!(
            "  curl -s -u \"$(cat {})\" -d grant_type=client_credentials {}",
            credentials.display(),
            config.token_endpoint()
        );
    } else if has_token_file || running.created_admin_token {
        println!("register a client:");
        println!(
            "  curl -s -H \"Authorization: Bearer $(cat {admin})\" -H 'Content-Type: application/json' -d '{{\"client_name\":\"my-service\"}}' http://{}/admin/clients",
            running.addr
        );
    }
}
