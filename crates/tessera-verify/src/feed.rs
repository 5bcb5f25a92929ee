//! Reading an authority's deny-list feed (`GET /revocations?since=SEQ`,
//! long-polled) into a [`DenyList`], with bounds a broken or hostile feed
//! cannot push past:
//! - a page is at most [`FeedOptions::max_page_bytes`], counted as it
//!   streams (a chunked answer has no `Content-Length`): past it the
//!   connection is dropped and the page is a failure;
//! - a page that brings nothing new before its long poll ran its course
//!   (`more: true` with no entries, or an empty answer at once) is followed
//!   by a pause that doubles up to [`FeedOptions::max_backoff`], as is a
//!   failure: the follower never spins. Nothing new means no entries
//!   (whatever the page's `seq` says), or entries that do not move the
//!   sequence number forward;
//! - the catch-up [`DenyList::follow`] does before it returns is bounded in
//!   time and pages. A feed that does not let it finish does not stop the
//!   caller from starting: `follow` returns a list that says it is not
//!   [caught up](DenyList::caught_up) (with a warning in the log and the
//!   gauge `tessera_verify_denylist_caught_up` at 0), and goes on catching
//!   up in the background.
//!
//! Only credentials the authority refuses (401, 403: a wrong secret, or a
//! client without the `revocations:read` permission) stop `follow`: they
//! are a configuration error that waiting does not mend.

use std::sync::{Arc, Weak};
use std::time::Duration;

use reqwest::{StatusCode, Url};
use tokio::time::Instant;

use crate::denylist::DenyList;
use crate::feed_format::Page;
use crate::remote;
use crate::BuildError;

/// How a deny-list feed is followed.
#[derive(Clone, Debug)]
pub struct FeedOptions {
    /// Timeout of connecting and of a request that is not a long poll (a
    /// long poll gets `long_poll` more).
    pub timeout: Duration,
    /// How long the authority may hold a request when nothing is new (the
    /// feed's `wait`, at most 30 s).
    pub long_poll: Duration,
    /// Largest page read, in bytes, counted as the body streams.
    pub max_page_bytes: usize,
    /// How long [`DenyList::follow`] may spend reading the feed before it
    /// returns.
    pub catch_up_time: Duration,
    /// Most pages [`DenyList::follow`] reads before it returns.
    pub catch_up_pages: u32,
    /// First pause after a page that brought nothing new early; doubles
    /// while that goes on.
    pub idle_backoff: Duration,
    /// First pause after a failed request; doubles while failures go on.
    pub error_backoff: Duration,
    /// Longest pause.
    pub max_backoff: Duration,
}

impl Default for FeedOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            long_poll: Duration::from_secs(25),
            // A page of the authority's largest size (10,000 entries) is
            // about 1.5 MB.
            max_page_bytes: 4 << 20,
            catch_up_time: Duration::from_secs(10),
            // The authority's default page is 1,000 entries.
            catch_up_pages: 100,
            idle_backoff: Duration::from_secs(1),
            error_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Why a feed request failed.
#[derive(Debug)]
enum FeedError {
    /// 401 or 403: the credentials or the client's registration.
    Denied(StatusCode),
    /// Unreachable, another status, too large, not a page.
    Failed(String),
}

impl std::fmt::Display for FeedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Denied(s) => write!(f, "HTTP {s}"),
            Self::Failed(e) => f.write_str(e),
        }
    }
}

/// What one page did.
struct Step {
    /// The page said more is to come.
    more: bool,
    /// The page listed entries and the list's sequence number moved
    /// forward.
    progressed: bool,
}

struct Follower {
    url: Url,
    http: reqwest::Client,
    id: String,
    secret: String,
    options: FeedOptions,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("url", &remote::redacted(&self.url))
            .field("client_id", &self.id)
            .finish_non_exhaustive()
    }
}

impl DenyList {
    /// Follows the feed at `url` (from the issuer's discovery document,
    /// `tessera_revocation_feed_endpoint`) as client `client_id`, which the
    /// authority must have registered with the `revocations:read`
    /// permission, in the background for as long as the returned list
    /// lives.
    ///
    /// Before returning it reads the feed to its end, within
    /// `catch_up_time` and `catch_up_pages`; a feed that is unreachable,
    /// broken or longer than that yields a list that is not yet
    /// [caught up](DenyList::caught_up) (logged as a warning), which the
    /// background task goes on filling.
    ///
    /// # Errors
    /// A bad URL, or credentials the feed refuses (401, 403).
    pub async fn follow(
        url: &str,
        client_id: &str,
        client_secret: &str,
        options: &FeedOptions,
    ) -> Result<Arc<Self>, BuildError> {
        let url = remote::check_url(url)?;
        let http = remote::http_client(&remote::RemoteOptions {
            // The long poll is held by the authority: the timeout covers it.
            timeout: options.timeout + options.long_poll,
            ..remote::RemoteOptions::default()
        })?;
        let follower = Follower {
            url,
            http,
            id: client_id.to_owned(),
            secret: client_secret.to_owned(),
            options: options.clone(),
        };
        let list = Arc::new(Self::new());
        let outcome = follower.catch_up(&list).await;
        match outcome {
            Ok(()) => {
                list.set_caught_up(true);
            }
            Err(FeedError::Denied(status)) => {
                return Err(BuildError::Fetch(format!(
                    "revocation feed {}: HTTP {status}: {}",
                    remote::redacted(&follower.url),
                    if status == StatusCode::FORBIDDEN {
                        "this client may not read the feed (register it with the permission revocations:read)"
                    } else {
                        "client authentication failed (check the client id and secret)"
                    }
                )));
            }
            Err(FeedError::Failed(reason)) => {
                list.record_failure();
                tracing::warn!(
                    url = %remote::redacted(&follower.url),
                    seq = list.seq(),
                    entries = list.len(),
                    reason = %reason,
                    "revocation feed not caught up at start: tokens revoked in the part not yet read are accepted until it is; catching up in the background"
                );
            }
        }
        let weak = Arc::downgrade(&list);
        tokio::spawn(async move { follower.run(weak).await });
        Ok(list)
    }
}

/// A page of the feed as the follower reads it; `None` when the body is
/// not one.
pub(crate) fn parse_page(body: &[u8]) -> Option<Page> {
    serde_json::from_slice(body).ok()
}

/// The `wait` a request asks the feed for: whole seconds, at most 30.
fn asked_wait(long_poll: Duration) -> Duration {
    Duration::from_secs(long_poll.as_secs().min(30))
}

impl Follower {
    /// Reads pages without waiting until one says nothing more is to come,
    /// within the catch-up bounds.
    async fn catch_up(&self, list: &DenyList) -> Result<(), FeedError> {
        let deadline = Instant::now() + self.options.catch_up_time;
        let mut pages = 0u32;
        loop {
            let step = tokio::time::timeout_at(deadline, self.page(list, Duration::ZERO))
                .await
                .map_err(|_| {
                    FeedError::Failed(format!(
                        "catch-up took longer than {:?}",
                        self.options.catch_up_time
                    ))
                })??;
            pages += 1;
            if !step.more {
                return Ok(());
            }
            if !step.progressed {
                return Err(FeedError::Failed(
                    "the feed says more is to come but lists nothing new".into(),
                ));
            }
            if pages >= self.options.catch_up_pages {
                return Err(FeedError::Failed(format!(
                    "{pages} pages read and more to come"
                )));
            }
        }
    }

    /// One request: the page after the list's sequence number, applied.
    async fn page(&self, list: &DenyList, wait: Duration) -> Result<Step, FeedError> {
        let failed = |e: reqwest::Error| FeedError::Failed(e.without_url().to_string());
        let mut url = self.url.clone();
        let before = list.seq();
        url.query_pairs_mut()
            .append_pair("since", &before.to_string())
            .append_pair("wait", &asked_wait(wait).as_secs().to_string());
        let resp = self
            .http
            .get(url)
            .basic_auth(&self.id, Some(&self.secret))
            .send()
            .await
            .map_err(failed)?;
        match resp.status() {
            StatusCode::OK => {}
            s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                return Err(FeedError::Denied(s))
            }
            s => return Err(FeedError::Failed(format!("HTTP {s}"))),
        }
        let body = remote::body_limited(resp, self.options.max_page_bytes)
            .await
            .map_err(FeedError::Failed)?;
        let page = parse_page(&body).ok_or_else(|| FeedError::Failed("not a feed page".into()))?;
        drop(body);
        list.apply(&page);
        Ok(Step {
            more: page.more,
            // Entries, not only a higher number: a page that moves the
            // sequence number but lists nothing brings nothing new, and a
            // feed answering so forever must not make us spin.
            progressed: !page.entries.is_empty() && list.seq() > before,
        })
    }

    async fn run(self, weak: Weak<DenyList>) {
        let o = &self.options;
        let mut error_backoff = o.error_backoff;
        let mut idle_backoff = o.idle_backoff;
        loop {
            let Some(list) = weak.upgrade() else { return };
            list.purge(tessera_jose::UnixTime::now().secs());
            let sent = Instant::now();
            let pause = match self.page(&list, o.long_poll).await {
                Ok(step) => {
                    error_backoff = o.error_backoff;
                    let was = list.set_caught_up(!step.more);
                    if !was && !step.more {
                        tracing::info!(url = %remote::redacted(&self.url), seq = list.seq(), entries = list.len(), "revocation feed caught up");
                    }
                    // Nothing new, and sooner than a long poll that ran its
                    // course (the wait the feed was asked for, not the
                    // option: under 1 s it asks for none, and past 30 s for
                    // 30): a feed that would make us spin.
                    let asked = asked_wait(o.long_poll);
                    if !step.progressed && (asked.is_zero() || sent.elapsed() < asked / 2) {
                        let pause = idle_backoff;
                        idle_backoff = (idle_backoff * 2).min(o.max_backoff);
                        Some(pause)
                    } else {
                        idle_backoff = o.idle_backoff;
                        None
                    }
                }
                Err(e) => {
                    list.record_failure();
                    tracing::warn!(url = %remote::redacted(&self.url), error = %e, "revocation feed unreachable; keeping the list");
                    let pause = error_backoff;
                    error_backoff = (error_backoff * 2).min(o.max_backoff);
                    Some(pause)
                }
            };
            drop(list);
            if let Some(pause) = pause {
                tokio::time::sleep(pause).await;
            }
        }
    }
}
