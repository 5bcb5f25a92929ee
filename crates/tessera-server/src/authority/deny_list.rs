//! The deny-list: what is refused (a jti, a key, everything of a subject or
//! client up to a time), the feed verifiers follow
//! (`GET /revocations?since=SEQ`), and revoking everything of a subject,
//! client or key.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tessera_verify::feed_format::Page;
use tokio::sync::{watch, Notify};

use super::{Authority, OAuthError};
use tessera_jose::UnixTime;

use crate::store::{Party, RevokeAll, Store, StoreError, TokenFacts};

/// How often a long poll looks at the database for other nodes'
/// revocations.
const POLL: Duration = Duration::from_millis(250);

/// The deny-list of one node: the store's rules, and a wake-up for feed
/// readers waiting on this node.
#[derive(Debug)]
pub(crate) struct DenyList {
    store: Store,
    /// Woken when this node lists a revocation.
    listed: Notify,
    /// Feed readers held in a long poll right now (tests wait on it to
    /// revoke while one is held, not before).
    held: AtomicUsize,
}

/// Counts a long poll as held while it lives.
struct Held<'a>(&'a AtomicUsize);

impl<'a> Held<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One page of the feed, as asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageRequest {
    /// Entries after this sequence number.
    pub(crate) since: i64,
    /// At most this many.
    pub(crate) limit: i64,
    /// With nothing new, wait up to this long.
    pub(crate) wait: Duration,
}

impl DenyList {
    pub(super) fn new(store: Store) -> Self {
        Self {
            store,
            listed: Notify::new(),
            held: AtomicUsize::new(0),
        }
    }

    /// How many feed readers this node holds in a long poll.
    #[cfg(feature = "test-util")]
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Tells feed readers waiting on this node that something was listed.
    pub(crate) fn listed(&self) {
        self.listed.notify_waiters();
    }

    /// Whether the deny-list refuses a token with these claims, signed by
    /// `kid` (none for an opaque token): its jti, its key, or a revocation
    /// of everything of its subject or client.
    ///
    /// # Errors
    /// On storage failure.
    pub(crate) async fn refuses(
        &self,
        claims: &Map<String, Value>,
        kid: Option<&str>,
    ) -> Result<bool, OAuthError> {
        Ok(self
            .store
            .is_refused(TokenFacts::from_claims(claims).signed_by(kid))
            .await?)
    }

    /// A page of the feed. Long poll: with nothing new, holds the request
    /// until this node lists a revocation or, for other nodes'
    /// revocations, the next look at the database (every 250 ms), up to
    /// `wait`, or until `stopping` turns true.
    ///
    /// # Errors
    /// On storage failure.
    pub(crate) async fn page(
        &self,
        ask: PageRequest,
        mut stopping: watch::Receiver<bool>,
    ) -> Result<Page, StoreError> {
        let deadline = tokio::time::Instant::now() + ask.wait;
        let mut result = self.store.revocations_since(ask.since, ask.limit).await;
        let mut held = None;
        while matches!(&result, Ok(page) if page.latest <= ask.since && !page.snapshot)
            && tokio::time::Instant::now() < deadline
            && !*stopping.borrow()
        {
            held.get_or_insert_with(|| Held::new(&self.held));
            let notified = self.listed.notified();
            tokio::select! {
                _ = tokio::time::timeout(POLL, notified) => {}
                _ = stopping.changed() => {}
            }
            result = self.store.revocations_since(ask.since, ask.limit).await;
        }
        drop(held);
        let page = result?;
        let more = i64::try_from(page.entries.len()).unwrap_or(i64::MAX) == ask.limit;
        Ok(Page {
            entries: page.entries,
            more,
            seq: page.latest,
            snapshot: page.snapshot,
        })
    }
}

impl Authority {
    /// Revokes everything of a subject or client issued up to and including
    /// the second `up_to` (None: ever); the answer says what went.
    ///
    /// # Errors
    /// On storage failure.
    pub(crate) async fn revoke_everything(
        &self,
        party: Party,
        target: &str,
        up_to: Option<i64>,
        actor: &str,
    ) -> Result<Value, OAuthError> {
        let kind = party.rule_kind();
        let now = self.now();
        let tokens = &self.config.tokens;
        // A token issued later in the same second is covered too: iat has
        // one-second resolution, and this errs on the safe side. The rule
        // lasts as long as the longest token it covers can (other nodes may
        // issue until they next reload).
        let not_before = up_to.map_or(i64::MAX, |t| t.saturating_add(1));
        let until = now
            .saturating_add(crate::clock::secs(tokens.max_access_token_ttl))
            .saturating_add(crate::clock::secs(tokens.leeway))
            .saturating_add(crate::clock::secs(self.config.keys.refresh_interval));
        let done = self
            .store
            .revoke_all(&RevokeAll {
                party,
                target,
                not_before: UnixTime::from_secs(not_before),
                expires_at: UnixTime::from_secs(until),
                actor,
                now: UnixTime::from_secs(now),
            })
            .await?;
        self.deny_list.listed();
        tracing::warn!(
            kind = kind.name(),
            target,
            seq = done.seq,
            families = done.families,
            "everything revoked"
        );
        Ok(json!({
            kind.name(): target,
            "seq": done.seq,
            "not_before": not_before,
            "refresh_families": done.families,
            "opaque_tokens": done.opaque_tokens,
            "access_tokens": done.access_tokens,
            "exchanged_tokens": done.exchanged_tokens,
        }))
    }

    /// Marks `kid` compromised: every token it signed is refused, and its
    /// successor (if any) signs at once.
    ///
    /// # Errors
    /// [`crate::lifecycle::LifecycleError`] as the admin API answers it.
    pub(crate) async fn compromise(
        &self,
        kid: &str,
        actor: &str,
    ) -> Result<Option<String>, crate::lifecycle::LifecycleError> {
        let successor = self.keys.compromise(kid, actor).await?;
        self.deny_list.listed();
        tracing::warn!(kid = %kid, successor = ?successor, "key marked compromised");
        Ok(successor)
    }
}
