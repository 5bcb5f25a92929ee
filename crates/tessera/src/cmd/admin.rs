//! The client of a running authority's admin API, shared by `tessera
//! clients ...` and `tessera keys list | rotate | compromised`: one request
//! per command, the server's JSON answer on stdout; a refusal (4xx) is
//! exit 1, anything else that goes wrong is exit 2.

use std::fmt;
use std::io::Read as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::cli::ServerArgs;
use crate::{exit, io};

/// Largest answer read: a list of clients with their JWKS can be long.
const MAX_ANSWER: u64 = 16 << 20;

/// Generous, because a rotation may generate an RSA 4096 key on the server.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to the admin API: the base URL and the admin token, both
/// checked before any request is sent.
pub(crate) struct Admin {
    base: Url,
    /// `Bearer <admin token>`, marked sensitive.
    authorization: HeaderValue,
    http: reqwest::blocking::Client,
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl Admin {
    /// Checks `--server` and reads the admin token from its file.
    ///
    /// # Errors
    /// A `--server` that is not a usable base URL, or a token file that is
    /// missing, unreadable, empty or holds something that is not a token.
    pub(crate) fn connect(args: &ServerArgs) -> Result<Self> {
        let base = base_url(&args.server)?;
        let token = read_token(&args.admin_token_file)?;
        let header = Zeroizing::new(format!("Bearer {}", token.as_str()));
        let mut authorization = HeaderValue::from_str(&header)
            .map_err(|_| anyhow!("the admin token cannot be sent in an HTTP header"))?;
        authorization.set_sensitive(true);
        let http = reqwest::blocking::Client::builder()
            .timeout(TIMEOUT)
            // A redirect could carry the token to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            base,
            authorization,
            http,
        })
    }

    /// Sends one request to `<server>/<segments...>` (each segment
    /// percent-encoded) and prints the answer; returns the exit code.
    ///
    /// # Errors
    /// The server cannot be reached, answers with a 5xx or anything but
    /// JSON on success (exit 2). A 4xx is not an error: it is printed as
    /// `tessera: server refused: CODE: description` and gives exit 1.
    pub(crate) fn call(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
    ) -> Result<u8> {
        let url = self.endpoint(segments)?;
        let what = format!("{method} {}", url.path());
        let mut request = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(body)?);
        }
        let response = request.send().map_err(|e| {
            anyhow::Error::new(e.without_url()).context(format!(
                "cannot reach {} (is `tessera serve` running there?)",
                self.base
            ))
        })?;
        let status = response.status();
        let answer = read_answer(response).with_context(|| format!("{what}: HTTP {status}"))?;
        if status.is_success() {
            if !answer.trim().is_empty() {
                // Checked without building a copy of the answer: it may hold
                // a client secret.
                serde_json::from_str::<serde::de::IgnoredAny>(&answer)
                    .map_err(|_| anyhow!("{what}: HTTP {status}: the answer is not JSON"))?;
                io::print(answer.trim_end())?;
            }
            return Ok(exit::OK);
        }
        let (code, description) = error_of(status, &answer);
        if status.is_client_error() {
            eprintln!("tessera: server refused: {code}: {description}");
            return Ok(exit::REJECTED);
        }
        if status.is_redirection() {
            bail!("{what}: HTTP {status}: redirects are not followed; give --server the authority's own URL");
        }
        bail!("{what}: the server failed: {code}: {description}")
    }

    fn endpoint(&self, segments: &[&str]) -> Result<Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| anyhow!("--server cannot be a base URL"))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }
}

/// `--server`: an http(s) URL, optionally with a path prefix (behind a
/// proxy), without credentials, query or fragment.
fn base_url(text: &str) -> Result<Url> {
    let url = Url::parse(text)
        .map_err(|e| anyhow!("--server is not a URL such as http://127.0.0.1:8080: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("--server must be an http:// or https:// URL");
    }
    if !url.username().is_empty() || url.password().is_some() {
        bail!("--server must not carry user:password: the admin token is the credential");
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("--server must not have a query or a fragment");
    }
    // The admin token is a bearer secret: in clear text it goes only to
    // this machine.
    if !tessera_verify::url_policy::allows(&url) {
        bail!(
            "--server {}: the admin token is only sent over https (plain http only for localhost)",
            url.as_str()
        );
    }
    Ok(url)
}

/// The admin token: the file's text, trimmed. Messages name the file,
/// never its contents.
fn read_token(path: &Path) -> Result<Zeroizing<String>> {
    let hint = || {
        format!(
            "reading the admin token from {} (`tessera serve` writes <data>/admin.token on first start; see --admin-token-file)",
            path.display()
        )
    };
    let text = io::read_text(path).with_context(hint)?;
    let token = text.trim();
    if token.is_empty() {
        bail!("{}: the admin token file is empty", path.display());
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        bail!(
            "{}: the admin token file holds spaces, control or non-ASCII characters",
            path.display()
        );
    }
    Ok(Zeroizing::new(token.to_owned()))
}

/// Reads the body (at most [`MAX_ANSWER`] bytes) into memory that is
/// zeroized when dropped.
fn read_answer(response: reqwest::blocking::Response) -> Result<Zeroizing<String>> {
    // Sized up front: growing the buffer would leave copies of a client
    // secret in freed memory.
    let size = response.content_length().unwrap_or(4096).min(MAX_ANSWER);
    let mut answer = Zeroizing::new(String::with_capacity(
        usize::try_from(size).unwrap_or(4096) + 1,
    ));
    response
        .take(MAX_ANSWER + 1)
        .read_to_string(&mut answer)
        .context("reading the answer")?;
    if answer.len() as u64 > MAX_ANSWER {
        bail!("the answer is over {} MiB", MAX_ANSWER >> 20);
    }
    Ok(answer)
}

/// The RFC 6749 §5.2 `error` and `error_description` of an answer, or its
/// status when it has none. Control characters are replaced, so that a
/// server cannot write to the terminal.
fn error_of(status: StatusCode, answer: &str) -> (String, String) {
    let json: Option<Value> = serde_json::from_str(answer).ok();
    let member = |name: &str| {
        json.as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .map(printable)
    };
    let reason = || {
        status
            .canonical_reason()
            .unwrap_or("no reason given")
            .to_owned()
    };
    match member("error") {
        Some(code) => (code, member("error_description").unwrap_or_else(reason)),
        None => (format!("HTTP {}", status.as_u16()), reason()),
    }
}

fn printable(text: &str) -> String {
    text.chars()
        .take(500)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_accepts_loopback_http_and_any_https() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:8080/",
            "http://[::1]:8080",
            "https://auth.example.com/tessera",
        ] {
            assert!(base_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "127.0.0.1:8080",
            "ftp://127.0.0.1",
            "http://auth.example.com",
            "http://admin:pw@127.0.0.1:8080",
            "http://127.0.0.1:8080/?x=1",
            "http://127.0.0.1:8080/#top",
            "not a url",
        ] {
            assert!(base_url(bad).is_err(), "{bad}");
        }
        let e = base_url("http://admin:pw@127.0.0.1:8080").unwrap_err();
        assert!(!format!("{e:#}").contains("pw"), "{e:#}");
    }

    #[test]
    fn endpoint_encodes_each_segment_and_keeps_a_path_prefix() {
        let admin = |base: &str| Admin {
            base: base_url(base).unwrap(),
            authorization: HeaderValue::from_static("Bearer x"),
            http: reqwest::blocking::Client::new(),
        };
        let a = admin("https://auth.example.com/tessera/");
        assert_eq!(
            a.endpoint(&["admin", "clients", "a/b?c#d"])
                .unwrap()
                .as_str(),
            "https://auth.example.com/tessera/admin/clients/a%2Fb%3Fc%23d"
        );
        let a = admin("http://127.0.0.1:8080");
        assert_eq!(
            a.endpoint(&["admin", "keys", "k 1", "compromised"])
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8080/admin/keys/k%201/compromised"
        );
    }

    #[test]
    fn debug_shows_no_token() {
        let mut authorization = HeaderValue::from_static("Bearer tat_secret");
        authorization.set_sensitive(true);
        let admin = Admin {
            base: base_url("http://127.0.0.1:8080").unwrap(),
            authorization,
            http: reqwest::blocking::Client::new(),
        };
        let shown = format!("{admin:?}");
        assert!(!shown.contains("tat_secret"), "{shown}");
    }

    #[test]
    fn error_of_reads_rfc6749_errors_and_falls_back_to_the_status() {
        let (code, description) = error_of(
            StatusCode::NOT_FOUND,
            r#"{"error":"not_found","error_description":"no client\u001b[2J with that id"}"#,
        );
        assert_eq!(code, "not_found");
        assert_eq!(description, "no client [2J with that id");
        let (code, description) = error_of(StatusCode::METHOD_NOT_ALLOWED, "");
        assert_eq!(code, "HTTP 405");
        assert_eq!(description, "Method Not Allowed");
    }
}
