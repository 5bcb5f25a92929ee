//! Following an authority's deny-list feed (`GET /revocations?since=SEQ`,
//! long-polled): revoked jtis are rejected with `revoked` until their
//! tokens expire, and so are tokens a rule covers: every token of a
//! subject or client issued before a time (logout everywhere), or every
//! token signed by a key (compromise).
//!
//! Memory stays bounded: an entry lives only until its token's `exp` (plus
//! the issuer's leeway), and is kept as a 64-bit keyed hash of the jti and
//! that time, not the jti itself (a false match needs a 2^-64 collision
//! under a per-process random key). When the authority is unreachable the
//! list is kept and the follower catches up from its last sequence number
//! (see `feed.rs` for how the feed is read, and the bounds on it).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::RwLock;

use crate::feed_format::{Page, RuleKind};

/// The followed deny-list.
pub struct DenyList {
    entries: RwLock<HashMap<u64, i64>>,
    /// Rules, by the keyed hash of their kind and target: few, so kept
    /// apart from the jtis (which stay 16 bytes each), and skipped
    /// altogether while there are none.
    rules: RwLock<HashMap<u64, Rule>>,
    rule_count: std::sync::atomic::AtomicUsize,
    hasher: RandomState,
    seq: AtomicI64,
    /// Feed requests that failed.
    pub failures: AtomicU64,
    /// Feed answers applied.
    pub updates: AtomicU64,
    /// Whether the last page read said nothing more was to come.
    caught_up: AtomicBool,
}

impl std::fmt::Debug for DenyList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DenyList")
            .field("seq", &self.seq.load(Ordering::Relaxed))
            .field("entries", &self.len())
            .field("caught_up", &self.caught_up())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy)]
struct Rule {
    /// Tokens whose `iat` is before this (i64::MAX: every token).
    not_before: i64,
    exp: i64,
}

/// What the deny-list reads of a verified token.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenFacts<'a> {
    /// `jti`.
    pub jti: Option<&'a str>,
    /// `sub`.
    pub sub: Option<&'a str>,
    /// `client_id`.
    pub client_id: Option<&'a str>,
    /// The header's `kid`.
    pub kid: Option<&'a str>,
    /// `iat` (a token without one is covered by any subject or client rule).
    pub iat: Option<i64>,
}

impl<'a> TokenFacts<'a> {
    /// The facts of a token's claims (and no kid).
    pub fn from_claims(claims: &'a serde_json::Map<String, serde_json::Value>) -> Self {
        let text = |name: &str| claims.get(name).and_then(serde_json::Value::as_str);
        Self {
            jti: text("jti"),
            sub: text("sub"),
            client_id: text("client_id"),
            kid: None,
            iat: claims.get("iat").and_then(serde_json::Value::as_i64),
        }
    }

    /// With the kid of the key that signed the token.
    #[must_use]
    pub fn signed_by(self, kid: Option<&'a str>) -> Self {
        Self { kid, ..self }
    }
}

impl Default for DenyList {
    fn default() -> Self {
        Self::new()
    }
}

impl DenyList {
    /// An empty list (fill it with [`DenyList::insert`], or follow a feed
    /// with [`DenyList::follow`]).
    pub fn new() -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            rules: RwLock::new(HashMap::new()),
            rule_count: std::sync::atomic::AtomicUsize::new(0),
            hasher: RandomState::new(),
            seq: AtomicI64::new(0),
            failures: AtomicU64::new(0),
            updates: AtomicU64::new(0),
            caught_up: AtomicBool::new(false),
        }
    }

    /// Whether the list holds everything the feed had listed when it was
    /// last read: false until a page says nothing more is to come (so false
    /// while [`DenyList::follow`] is still catching up, or for a list filled
    /// only by hand), and false again after a page says more is to come or
    /// a request fails, until the follower has read to the end again.
    /// Exported as the gauge `tessera_verify_denylist_caught_up` (0 or 1).
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// Records whether the feed has been read to its end; the previous state.
    pub(crate) fn set_caught_up(&self, now: bool) -> bool {
        metrics::gauge!("tessera_verify_denylist_caught_up").set(if now { 1.0 } else { 0.0 });
        self.caught_up.swap(now, Ordering::AcqRel)
    }

    /// A failed read of the feed: the list is not caught up, and the
    /// failure is counted (the field and the metric).
    pub(crate) fn record_failure(&self) {
        self.set_caught_up(false);
        self.failures.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("tessera_verify_denylist_failures_total").increment(1);
    }

    fn key(&self, jti: &str) -> u64 {
        self.hasher.hash_one(jti)
    }

    /// Lists `jti` until `exp`.
    pub fn insert(&self, jti: &str, exp: i64) {
        if let Ok(mut map) = self.entries.write() {
            map.insert(self.key(jti), exp);
        }
    }

    fn rule_key(&self, kind: RuleKind, target: &str) -> u64 {
        self.hasher.hash_one((kind, target))
    }

    /// Lists a rule until `exp`: tokens of `kind` `target` (with an `iat`
    /// before `not_before`, for subject and client rules; `None` covers
    /// every token). A rule listed again takes the new bounds. A
    /// [`RuleKind::Jti`] "rule" lists the one token, as
    /// [`DenyList::insert`] does.
    pub fn insert_rule(&self, kind: RuleKind, target: &str, not_before: Option<i64>, exp: i64) {
        if kind == RuleKind::Jti {
            self.insert(target, exp);
            return;
        }
        if let Ok(mut map) = self.rules.write() {
            let rule = Rule {
                not_before: not_before.unwrap_or(i64::MAX),
                exp,
            };
            map.insert(self.rule_key(kind, target), rule);
            self.rule_count.store(map.len(), Ordering::Release);
        }
    }

    /// Whether `jti` is listed (and not yet expired at `now`).
    pub fn contains(&self, jti: &str, now: i64) -> bool {
        self.entries
            .read()
            .map(|map| map.get(&self.key(jti)).is_some_and(|exp| *exp >= now))
            .unwrap_or(true) // a poisoned lock fails closed
    }

    /// Whether the list refuses a token: its jti is listed, or a rule
    /// covers its subject, client or key. `client_id` is asked for only
    /// while a client rule may apply (it is not a registered claim, so a
    /// caller may have to parse it out).
    pub fn refuses(&self, token: TokenFacts<'_>, now: i64) -> bool {
        if token.jti.is_some_and(|jti| self.contains(jti, now)) {
            return true;
        }
        if self.rule_count.load(Ordering::Acquire) == 0 {
            return false;
        }
        let Ok(rules) = self.rules.read() else {
            return true; // a poisoned lock fails closed
        };
        let iat = token.iat.unwrap_or(i64::MIN);
        let covers = |kind: RuleKind, target: Option<&str>| {
            target.is_some_and(|t| {
                rules
                    .get(&self.rule_key(kind, t))
                    .is_some_and(|r| r.exp >= now && iat < r.not_before)
            })
        };
        covers(RuleKind::Kid, token.kid)
            || covers(RuleKind::Subject, token.sub)
            || covers(RuleKind::Client, token.client_id)
    }

    /// Whether any rule is listed (so a caller knows it needs the token's
    /// `client_id` for [`DenyList::refuses`]).
    pub fn has_rules(&self) -> bool {
        self.rule_count.load(Ordering::Acquire) > 0
    }

    /// Entries held (jtis and rules).
    pub fn len(&self) -> usize {
        self.entries.read().map(|m| m.len()).unwrap_or(0) + self.rule_count.load(Ordering::Acquire)
    }

    /// Whether nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The last sequence number applied.
    pub fn seq(&self) -> i64 {
        self.seq.load(Ordering::Relaxed)
    }

    /// Drops entries whose tokens have expired.
    pub fn purge(&self, now: i64) {
        if let Ok(mut map) = self.entries.write() {
            map.retain(|_, exp| *exp >= now);
        }
        if let Ok(mut map) = self.rules.write() {
            map.retain(|_, r| r.exp >= now);
            self.rule_count.store(map.len(), Ordering::Release);
        }
    }

    pub(crate) fn apply(&self, page: &Page) {
        let Ok(mut map) = self.entries.write() else {
            return;
        };
        // Nothing is cleared on a snapshot: entries older than the purge
        // horizon expire here by their own exp (see `purge`). An entry of a
        // kind this version does not know is skipped (its seq counts).
        for e in &page.entries {
            if let Some(t) = e.target.as_ref().filter(|t| t.kind == RuleKind::Jti) {
                map.insert(self.key(&t.value), e.exp);
            }
        }
        drop(map);
        for e in &page.entries {
            if let Some(t) = e.target.as_ref().filter(|t| t.kind != RuleKind::Jti) {
                // A subject or client rule without a bound covers every
                // token: the safe reading of a malformed entry.
                self.insert_rule(t.kind, &t.value, e.not_before, e.exp);
            }
        }
        let last = page.entries.last().map_or(page.seq, |e| e.seq);
        let next = if page.more { last } else { page.seq.max(last) };
        self.seq.store(next, Ordering::Relaxed);
        self.updates.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token<'a>(sub: &'a str, client: &'a str, kid: &'a str, iat: i64) -> TokenFacts<'a> {
        TokenFacts {
            jti: Some("j-1"),
            sub: Some(sub),
            client_id: Some(client),
            kid: Some(kid),
            iat: Some(iat),
        }
    }

    #[test]
    fn rules_cover_tokens_issued_before_their_bound_until_they_expire() {
        let list = DenyList::new();
        assert!(!list.refuses(token("alice", "web", "k1", 100), 150));
        list.insert_rule(RuleKind::Subject, "alice", Some(101), 4000);
        assert!(list.refuses(token("alice", "web", "k1", 100), 150));
        assert!(
            !list.refuses(token("alice", "web", "k1", 101), 150),
            "issued after"
        );
        assert!(
            !list.refuses(token("bob", "web", "k1", 100), 150),
            "another subject"
        );
        assert!(
            !list.refuses(token("alice", "web", "k1", 100), 4001),
            "rule expired"
        );
        let no_iat = TokenFacts {
            iat: None,
            ..token("alice", "web", "k1", 0)
        };
        assert!(list.refuses(no_iat, 150), "no iat: covered");

        list.insert_rule(RuleKind::Client, "web", Some(200), 4000);
        assert!(list.refuses(token("bob", "web", "k1", 199), 250));
        assert!(!list.refuses(token("bob", "mobile", "k1", 199), 250));
        // A subject's name that equals a client id is another target.
        assert!(!list.refuses(token("web", "mobile", "k1", 150), 250));

        list.insert_rule(RuleKind::Kid, "k1", None, 4000);
        assert!(
            list.refuses(token("bob", "mobile", "k1", 3000), 3500),
            "every token of the key"
        );
        assert!(!list.refuses(token("bob", "mobile", "k2", 3000), 3500));

        // Listed again: the new bound stands.
        list.insert_rule(RuleKind::Subject, "alice", Some(500), 5000);
        assert!(list.refuses(token("alice", "mobile", "k2", 400), 450));
        assert_eq!(list.len(), 3);
        list.purge(4500);
        assert_eq!(list.len(), 1);
        assert!(!list.refuses(token("bob", "web", "k1", 199), 4500));
    }

    #[test]
    fn a_jti_rule_lists_the_one_token() {
        let list = DenyList::new();
        list.insert_rule(RuleKind::Jti, "j-1", None, 900);
        assert!(list.contains("j-1", 900));
        assert!(!list.has_rules());
        assert!(list.refuses(token("bob", "web", "k1", 100), 900));
    }

    #[test]
    fn feed_pages_carry_jtis_and_rules() {
        let list = DenyList::new();
        let page: Page = serde_json::from_value(serde_json::json!({
            "seq": 4, "more": false, "snapshot": false,
            "entries": [
                {"seq": 1, "jti": "j-1", "exp": 900},
                {"seq": 2, "sub": "alice", "not_before": 101, "exp": 900},
                {"seq": 3, "client_id": "web", "not_before": 101, "exp": 900},
                {"seq": 4, "kid": "k9", "exp": 900},
            ]
        }))
        .unwrap();
        list.apply(&page);
        assert_eq!((list.seq(), list.len()), (4, 4));
        let quiet = |jti| TokenFacts {
            jti: Some(jti),
            sub: Some("bob"),
            client_id: Some("mobile"),
            kid: Some("k1"),
            iat: Some(100),
        };
        assert!(list.refuses(quiet("j-1"), 200));
        assert!(!list.refuses(quiet("j-2"), 200));
        assert!(list.refuses(
            TokenFacts {
                sub: Some("alice"),
                ..quiet("j-2")
            },
            200
        ));
        assert!(list.refuses(
            TokenFacts {
                client_id: Some("web"),
                ..quiet("j-2")
            },
            200
        ));
        assert!(list.refuses(
            TokenFacts {
                kid: Some("k9"),
                ..quiet("j-2")
            },
            200
        ));
    }
}
