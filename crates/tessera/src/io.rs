//! File, stdin and network input for the commands.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use zeroize::Zeroizing;

/// Largest JWKS or token the CLI reads (1 MiB).
const MAX_INPUT: u64 = 1 << 20;

/// Reads the token from the argument, or from stdin when it is absent or "-".
/// One trailing newline (LF or CRLF) is removed.
pub(crate) fn token(arg: Option<String>) -> Result<String> {
    let text = match arg.as_deref() {
        Some(t) if t != "-" => return Ok(t.to_owned()),
        _ => {
            let mut buf = Vec::new();
            // One byte more than the limit, so that an oversized token is
            // refused as too_large rather than cut and judged by its prefix.
            std::io::stdin()
                .take(MAX_INPUT + 1)
                .read_to_end(&mut buf)
                .context("reading the token from stdin")?;
            String::from_utf8(buf)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        }
    };
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    Ok(text.to_owned())
}

/// Reads a small text file (JWK, JWKS). It may hold private keys, so it is
/// zeroized when dropped.
pub(crate) fn read_text(path: &Path) -> Result<Zeroizing<String>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    // Sized up front: growing the buffer would leave copies of a private key
    // in freed memory.
    let size = file.metadata().map_or(4096, |m| m.len()).min(MAX_INPUT);
    let mut text = Zeroizing::new(String::with_capacity(
        usize::try_from(size).unwrap_or(4096) + 1,
    ));
    file.take(MAX_INPUT)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {} as UTF-8 text", path.display()))?;
    Ok(text)
}

/// Reads a JWKS from a file path or an http(s) URL.
pub(crate) fn read_jwks_source(source: &str) -> Result<Zeroizing<String>> {
    if !(source.starts_with("http://") || source.starts_with("https://")) {
        return read_text(Path::new(source));
    }
    let url = reqwest::Url::parse(source).context("--jwks is not a valid URL")?;
    // Messages name the URL without any user:password it may carry.
    let shown = format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.path()
    );
    // Keys fetched in clear text can be swapped on the way; plain http is
    // for a local authority only.
    if !tessera_verify::url_policy::allows(&url) {
        bail!("{shown}: a JWKS URL must use https (plain http only for localhost)");
    }
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the HTTP client")?;
    let response = client
        .get(url)
        .header("accept", "application/json")
        .send()
        .map_err(|e| anyhow::anyhow!("fetching {shown}: {}", e.without_url()))?;
    if !response.status().is_success() {
        bail!("fetching {shown}: HTTP {}", response.status());
    }
    let mut body = String::new();
    response
        .take(MAX_INPUT)
        .read_to_string(&mut body)
        .with_context(|| format!("reading {shown}"))?;
    Ok(Zeroizing::new(body))
}

/// Writes `contents` to `path` with mode 0600, replacing it atomically.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().context("--out must name a file")?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    // From here on the temporary file is ours to remove if anything fails.
    let result = (|| -> Result<()> {
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Prints a line to stdout; a closed pipe surfaces as an error that `main`
/// treats as success.
pub(crate) fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// True when the error chain ends in a broken pipe.
pub(crate) fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
