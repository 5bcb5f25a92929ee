//! Fuzzes the TOML configuration of `tessera serve` (`Config::load` on a
//! file, no environment, no flags): parsing, types, and every section's
//! validation. The invariant is that a file never panics the loader and
//! that a refusal names what is wrong.
#![no_main]

use std::io::Write as _;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tessera_server::{Config, Overrides};

fn file() -> &'static tempfile::NamedTempFile {
    static F: OnceLock<tempfile::NamedTempFile> = OnceLock::new();
    F.get_or_init(|| tempfile::NamedTempFile::new().expect("temporary file"))
}

fuzz_target!(|data: &[u8]| {
    let f = file();
    let mut w = f.reopen().expect("reopen");
    w.set_len(0).expect("truncate");
    w.write_all(data).expect("write");
    drop(w);
    if let Err(e) = Config::load(Some(f.path()), std::iter::empty(), &Overrides::default()) {
        assert!(!e.to_string().is_empty(), "an error that says nothing");
    }
});
