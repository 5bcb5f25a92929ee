//! Command-line arguments (clap derive). Turned into validated settings by
//! the `cmd` modules before any work is done.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tessera_jose::Algorithm;

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "Tessera: JWT token authority and offline tools"
)]
pub(crate) struct Args {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Generate keys and publish their public parts.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Sign, verify, decode and lint tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Register, list and delete the clients of a running authority.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Revoke everything of a user (logout everywhere) or a client, or every
    /// token a key signed, on a running authority.
    Revoke(RevokeArgs),
    /// Run the token authority.
    Serve(ServeArgs),
    /// Run the verifying reverse proxy in front of a service.
    Gateway(GatewayArgs),
}

/// `tessera revoke`: exactly one of --sub, --client, --kid.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["sub", "client", "kid"])))]
pub(crate) struct RevokeArgs {
    /// Every token, refresh token and session of this user (`sub`).
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) sub: Option<String>,
    /// Everything issued to this client.
    #[arg(long, value_name = "CLIENT_ID", allow_hyphen_values = true)]
    pub(crate) client: Option<String>,
    /// Every token this key signed: the key is marked compromised.
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) kid: Option<String>,
    #[command(flatten)]
    pub(crate) server: ServerArgs,
}

/// `tessera gateway`: flags win over the config file.
#[derive(Debug, clap::Args)]
pub(crate) struct GatewayArgs {
    /// `proxy` (the default: forward to --upstream) or `authz` (answer a
    /// proxy in front that asks whether a request may pass; [authz] in the
    /// config file names that proxy).
    #[arg(long, value_name = "MODE")]
    pub(crate) mode: Option<String>,
    /// The service behind the gateway (http://host:port).
    #[arg(long, value_name = "URL")]
    pub(crate) upstream: Option<String>,
    /// The token issuer (its discovery document gives the JWKS).
    #[arg(long, value_name = "URL")]
    pub(crate) issuer: Option<String>,
    /// The audience tokens must name (routes may require others).
    #[arg(long)]
    pub(crate) audience: Option<String>,
    /// Address to listen on (default 127.0.0.1:8000).
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<String>,
    /// TOML config file (routes, timeouts).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Forward the original token to the upstream in X-Tessera-Token.
    #[arg(long)]
    pub(crate) forward_token: bool,
    /// How long the upstream may take to answer before 504 (default 30s).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) upstream_timeout: Option<Duration>,
}

/// `tessera serve`: flags win over `TESSERA_<SECTION>_<KEY>` environment
/// variables, which win over the config file.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// TOML config file (see tessera.example.toml).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Data folder (SQLite database, key-encryption key, admin token).
    #[arg(long, value_name = "DIR")]
    pub(crate) data: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<String>,
    /// Issuer URL (default http://<listen>).
    #[arg(long, value_name = "URL")]
    pub(crate) issuer: Option<String>,
    /// postgres://... to run on PostgreSQL instead of the embedded SQLite.
    #[arg(long, value_name = "URL")]
    pub(crate) database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Generate one private JWK (kid defaults to its RFC 7638 thumbprint).
    Generate {
        /// Algorithm the key is bound to (ES256, ES384, ES512, EdDSA, RS256..., PS256..., HS256...).
        #[arg(long, value_parser = parse_alg)]
        alg: Algorithm,
        /// Key id (default: the RFC 7638 thumbprint).
        #[arg(long)]
        kid: Option<String>,
        /// Write to FILE (mode 0600) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print a JWKS with only the public members of each key.
    Public {
        /// JWK or JWKS files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// List the keys of a running authority and their lifecycle states.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Rotate: the pending key (already published) signs once it has been
    /// published for the prepublish delay.
    ///
    /// With --immediate, the active key retires and the pending key signs at
    /// once; the next key is published.
    Rotate {
        /// Rotate only this algorithm (default: every configured one).
        #[arg(long, value_parser = parse_alg)]
        alg: Option<Algorithm>,
        /// Make the pending key active at once (it was published when the
        /// active key started signing, so verifiers normally hold it).
        #[arg(long)]
        immediate: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Mark a key compromised: it leaves the JWKS at once and a successor signs.
    Compromised {
        /// Key id (as `tessera keys list` shows it). A thumbprint may start
        /// with '-', so the value is never read as a flag.
        #[arg(value_parser = parse_path_segment, allow_hyphen_values = true)]
        kid: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClientsCommand {
    /// Register a client; prints it with its secret, which is shown only once.
    Create(Box<CreateClientArgs>),
    /// List the registered clients (never their secrets).
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Delete a client: its credentials stop working at once.
    Delete {
        /// Client id (as `tessera clients list` shows it).
        #[arg(value_parser = parse_path_segment)]
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// `tessera clients create`: each flag is one RFC 7591 member; the server
/// applies the defaults and judges the values.
#[derive(Debug, clap::Args)]
pub(crate) struct CreateClientArgs {
    /// Human name (client_name).
    #[arg(long)]
    pub(crate) name: String,
    /// Grant the client may use; repeat for several (default: client_credentials).
    #[arg(long = "grant-type", value_name = "GRANT")]
    pub(crate) grant_types: Vec<String>,
    /// How the client authenticates at the token endpoint (default: client_secret_basic).
    #[arg(long, value_name = "METHOD", value_parser = ["client_secret_basic", "client_secret_post", "private_key_jwt"])]
    pub(crate) auth_method: Option<String>,
    /// Allowed scopes, space-separated.
    #[arg(long)]
    pub(crate) scope: Option<String>,
    /// Allowed audience; repeat for several (default: the server's default audience).
    #[arg(long = "audience", value_name = "AUDIENCE")]
    pub(crate) audiences: Vec<String>,
    /// Access-token lifetime such as 10m or 90s, whole seconds (default: the server's).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) ttl: Option<Duration>,
    /// Static claim NAME=VALUE added to every token; VALUE is JSON where it parses, else a string.
    #[arg(long, value_name = "NAME=VALUE")]
    pub(crate) claim: Vec<String>,
    /// Public JWK or JWKS the client signs its assertions with (private_key_jwt).
    #[arg(long, value_name = "FILE")]
    pub(crate) jwks: Option<PathBuf>,
    /// Access-token format: `jwt` (default) or `opaque` (`tso_` handles, valid through introspection).
    #[arg(long, value_name = "FORMAT", value_parser = ["jwt", "opaque"])]
    pub(crate) token_format: Option<String>,
    /// Audience whose tokens this client (a resource server) may introspect and exchange; repeat for several.
    #[arg(long = "introspection-audience", value_name = "AUDIENCE")]
    pub(crate) introspection_audiences: Vec<String>,
    /// Claim of a jwt-bearer assertion passed on to the user's token; repeat for several.
    #[arg(long = "assertion-claim", value_name = "NAME")]
    pub(crate) assertion_claims: Vec<String>,
    /// Permission at the authority itself; repeat for several. `revocations:read`
    /// lets the client read the deny-list feed (for a gateway or a verifier that follows it).
    #[arg(long = "permission", value_name = "PERMISSION")]
    pub(crate) permissions: Vec<String>,
    #[command(flatten)]
    pub(crate) server: ServerArgs,
}

/// Where the admin API is and how to prove the right to use it. The admin
/// token comes from a file, never from the command line, where every user
/// of the machine could read it.
#[derive(Debug, clap::Args)]
pub(crate) struct ServerArgs {
    /// Base URL of the running `tessera serve` (plain http only for loopback).
    #[arg(
        long,
        value_name = "URL",
        env = "TESSERA_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub(crate) server: String,
    /// File holding the admin token (written to <data>/admin.token on the server's first start).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "./tessera-data/admin.token"
    )]
    pub(crate) admin_token_file: PathBuf,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Sign a JWT with a private JWK.
    Sign {
        /// Private JWK file (its alg and kid go in the header).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Issuer (iss).
        #[arg(long)]
        iss: Option<String>,
        /// Subject (sub).
        #[arg(long)]
        sub: Option<String>,
        /// Audience (aud); repeat for several.
        #[arg(long)]
        aud: Vec<String>,
        /// Lifetime: exp = now + TTL.
        #[arg(long, default_value = "15m", value_parser = parse_duration)]
        ttl: Duration,
        /// Extra claim NAME=VALUE; VALUE is JSON where it parses, else a string.
        #[arg(long, value_name = "NAME=VALUE")]
        claim: Vec<String>,
        /// Header typ.
        #[arg(long, default_value = "JWT")]
        typ: String,
    },
    /// Verify a JWT against a JWKS (file or URL).
    Verify {
        /// JWKS (or single JWK) file, or an http(s) URL.
        #[arg(long, value_name = "FILE_OR_URL")]
        jwks: String,
        /// Required issuer.
        #[arg(long)]
        iss: Option<String>,
        /// Required audience (the token's aud must contain it).
        #[arg(long)]
        aud: Option<String>,
        /// Allowed algorithm; repeat for several (default: each key's alg).
        #[arg(long, value_parser = parse_alg)]
        alg: Vec<Algorithm>,
        /// Clock leeway for exp and nbf.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        leeway: Duration,
        /// Required header typ.
        #[arg(long)]
        typ: Option<String>,
        /// The token, or "-" (default) for stdin.
        token: Option<String>,
    },
    /// Decode a JWT without verifying it.
    Decode {
        /// The token, or "-" (default) for stdin.
        token: Option<String>,
    },
    /// Report risky properties of a JWT (size, sensitive claims, lifetime...).
    Lint {
        /// The token, or "-" (default) for stdin.
        token: Option<String>,
        /// Size budget in bytes.
        #[arg(long, default_value_t = tessera_jose::lint::DEFAULT_BUDGET)]
        max_bytes: usize,
    },
}

fn parse_alg(s: &str) -> Result<Algorithm, String> {
    Algorithm::from_name(s).ok_or_else(|| {
        let names: Vec<_> = Algorithm::ALL.iter().map(|a| a.name()).collect();
        format!("unsupported algorithm (one of {})", names.join(", "))
    })
}

/// A client id or kid, which becomes one segment of an admin URL.
fn parse_path_segment(s: &str) -> Result<String, String> {
    if s.is_empty() || s == "." || s == ".." {
        return Err("must be an id (as the list command shows it)".to_owned());
    }
    Ok(s.to_owned())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 90s, 15m, 1h, 10d)"))
}
