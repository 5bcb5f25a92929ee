//! Fuzzes the TOML configuration of `tessera gateway`
//! (`GatewayConfig::load` on a file, no flags): parsing, routes and their
//! prefixes, durations, the feed client. The invariant is that a file never
//! panics the loader and that a refusal names what is wrong.
//!
//! The loader reads `client_secret_file`; a file naming a device or a
//! kernel file (`/dev/zero` never ends) is skipped, since reading it is
//! what the operator asked for, not a parsing fault.
#![no_main]

use std::io::Write as _;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tessera_gateway::{GatewayConfig, GatewayOverrides};

fn file() -> &'static tempfile::NamedTempFile {
    static F: OnceLock<tempfile::NamedTempFile> = OnceLock::new();
    F.get_or_init(|| tempfile::NamedTempFile::new().expect("temporary file"))
}

/// Whether any string in the TOML could name a special file.
fn names_special_file(text: &str) -> bool {
    fn any(v: &toml::Value) -> bool {
        match v {
            toml::Value::String(s) => {
                s.contains('/')
                    && ["dev", "proc", "sys", "fd", "run"]
                        .iter()
                        .any(|w| s.contains(w))
            }
            toml::Value::Array(a) => a.iter().any(any),
            toml::Value::Table(t) => t.values().any(any),
            _ => false,
        }
    }
    text.parse::<toml::Table>()
        .is_ok_and(|t| any(&toml::Value::Table(t)))
}

fuzz_target!(|data: &[u8]| {
    if std::str::from_utf8(data).is_ok_and(names_special_file) {
        return;
    }
    let f = file();
    let mut w = f.reopen().expect("reopen");
    w.set_len(0).expect("truncate");
    w.write_all(data).expect("write");
    drop(w);
    if let Err(e) = GatewayConfig::load(Some(f.path()), &GatewayOverrides::default()) {
        assert!(!e.to_string().is_empty(), "an error that says nothing");
    }
});
