//! Memory of tessera-verify's followed deny-list with 1,000,000 live
//! entries (the bound: under 64 MiB), measured as the growth of the
//! process's resident set (VmRSS) while the entries are inserted.
//!
//! `cargo run --release -p tessera-bench --bin denylist_memory`

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let list = tessera_verify::DenyList::new();
    let before = rss_kib();
    let exp = tessera_jose::UnixTime::now().secs() + 900;
    for i in 0..n {
        // jtis as tessera serve makes them: 22 base64url characters.
        let jti = format!("{i:0>22}");
        list.insert(&jti, exp);
    }
    let after = rss_kib();
    assert_eq!(list.len(), n);
    assert!(list.contains(&format!("{:0>22}", n / 2), exp - 1));
    #[allow(clippy::cast_precision_loss)]
    let mib = (after.saturating_sub(before)) as f64 / 1024.0;
    #[allow(clippy::cast_precision_loss)]
    let per = (after.saturating_sub(before) * 1024) as f64 / n as f64;
    println!("{n} entries: +{mib:.1} MiB resident ({per:.1} bytes per entry)");
}
