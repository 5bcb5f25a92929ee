//! Fuzzes unverified decoding and lint (what `tessera token decode|lint` run).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_jose::lint::{lint, LintOptions};

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = lint(token, &LintOptions::default());
    }
});
