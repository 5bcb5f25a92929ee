//! The wire format of the deny-list feed (`GET /revocations?since=SEQ`):
//! the authority writes its pages with these types and a follower
//! ([`DenyList::follow`](crate::DenyList::follow)) reads them with the same
//! ones.
//!
//! A page is `{"entries": [...], "more": BOOL, "seq": LATEST, "snapshot":
//! BOOL}`; an entry names what it covers by the member that carries its
//! target: `{"exp","jti","seq"}` for one token, or a rule:
//! `{"exp","not_before","seq","sub"}`, `{"client_id","exp","not_before","seq"}`
//! (every token of that subject or client whose `iat` is before
//! `not_before`), `{"exp","kid","seq"}` (every token that key signed).
//! Members are written in that (alphabetical) order, as the authority has
//! always written them.
//!
//! An entry naming none of the known targets (a kind a later authority may
//! add) is read with no [`Entry::target`], so a follower skips it (its
//! `seq` still counts) instead of failing every page.

use serde::{Deserialize, Serialize, Serializer};

/// What a deny-list entry covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// One token, by jti.
    Jti,
    /// Every token of a subject (its `sub`) issued before the rule's
    /// `not_before`.
    Subject,
    /// Every token of a client (its `client_id` claim) issued before the
    /// rule's `not_before`.
    Client,
    /// Every token signed by a key (its header `kid`).
    Kid,
}

impl RuleKind {
    /// Every kind, in the order a follower looks for them in an entry.
    pub const ALL: [Self; 4] = [Self::Jti, Self::Subject, Self::Client, Self::Kid];

    /// The name of the entry's member that carries the target (also the
    /// name the authority stores).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Jti => "jti",
            Self::Subject => "sub",
            Self::Client => "client_id",
            Self::Kid => "kid",
        }
    }

    /// The kind of a [name](RuleKind::name); `None` for another.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// What an entry covers: a kind and its jti, subject, client id or kid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The kind.
    pub kind: RuleKind,
    /// The jti, subject, client id or kid.
    pub value: String,
}

/// One entry of a page.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "WireEntry<String>")]
pub struct Entry {
    /// Its sequence number.
    pub seq: i64,
    /// What it covers; `None` for a kind this version does not know (skip
    /// the entry).
    pub target: Option<Target>,
    /// For subject and client rules: tokens whose `iat` is before this.
    pub not_before: Option<i64>,
    /// When the last token it covers has expired.
    pub exp: i64,
}

impl Entry {
    /// An entry covering `value` of `kind`.
    pub fn new(seq: i64, kind: RuleKind, value: String, not_before: Option<i64>, exp: i64) -> Self {
        Self {
            seq,
            target: Some(Target { kind, value }),
            not_before,
            exp,
        }
    }
}

/// An entry as it travels. Members in alphabetical order: the order the
/// authority wrote them in when it built pages as `serde_json::Value`s.
#[derive(Serialize, Deserialize)]
struct WireEntry<S> {
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<S>,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<S>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<S>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_before: Option<i64>,
    seq: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<S>,
}

impl From<WireEntry<String>> for Entry {
    /// The first target member in [`RuleKind::ALL`]'s order names the kind
    /// (an entry has exactly one).
    fn from(w: WireEntry<String>) -> Self {
        let target = [
            (RuleKind::Jti, w.jti),
            (RuleKind::Subject, w.sub),
            (RuleKind::Client, w.client_id),
            (RuleKind::Kid, w.kid),
        ]
        .into_iter()
        .find_map(|(kind, v)| v.map(|value| Target { kind, value }));
        Self {
            seq: w.seq,
            target,
            not_before: w.not_before,
            exp: w.exp,
        }
    }
}

impl Serialize for Entry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let of = |kind: RuleKind| {
            self.target
                .as_ref()
                .filter(|t| t.kind == kind)
                .map(|t| t.value.as_str())
        };
        WireEntry {
            client_id: of(RuleKind::Client),
            exp: self.exp,
            jti: of(RuleKind::Jti),
            kid: of(RuleKind::Kid),
            not_before: self.not_before,
            seq: self.seq,
            sub: of(RuleKind::Subject),
        }
        .serialize(serializer)
    }
}

/// One page of the feed.
///
/// Fields in alphabetical order: the order the authority wrote them in
/// when it built pages as `serde_json::Value`s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// The entries after the `since` asked for, in sequence order.
    pub entries: Vec<Entry>,
    /// The page is full: more entries follow (ask again with `since` = the
    /// last entry's `seq`).
    pub more: bool,
    /// The latest sequence number of the feed.
    pub seq: i64,
    /// `since` is older than the purge horizon: the page lists every live
    /// entry, and what a follower holds from before may be dropped. A page
    /// without it reads as `false`.
    #[serde(default)]
    pub snapshot: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn page() -> Page {
        Page {
            entries: vec![
                Entry::new(1, RuleKind::Jti, "j-1".into(), None, 900),
                Entry::new(2, RuleKind::Subject, "alice".into(), Some(101), 900),
                Entry::new(3, RuleKind::Client, "web".into(), Some(101), 900),
                Entry::new(4, RuleKind::Kid, "k9".into(), None, 900),
            ],
            more: true,
            seq: 7,
            snapshot: false,
        }
    }

    #[test]
    fn names_round_trip() {
        for kind in RuleKind::ALL {
            assert_eq!(RuleKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(RuleKind::from_name("aud"), None);
    }

    #[test]
    fn pages_are_written_as_the_authority_always_wrote_them() {
        let text = serde_json::to_string(&page()).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"entries":[{"exp":900,"jti":"j-1","seq":1},"#,
                r#"{"exp":900,"not_before":101,"seq":2,"sub":"alice"},"#,
                r#"{"client_id":"web","exp":900,"not_before":101,"seq":3},"#,
                r#"{"exp":900,"kid":"k9","seq":4}],"more":true,"seq":7,"snapshot":false}"#
            )
        );
        // The same bytes as the `Value` the authority built before.
        let value = json!({
            "seq": 7, "snapshot": false, "more": true,
            "entries": [
                {"seq": 1, "exp": 900, "jti": "j-1"},
                {"seq": 2, "exp": 900, "sub": "alice", "not_before": 101},
                {"seq": 3, "exp": 900, "client_id": "web", "not_before": 101},
                {"seq": 4, "exp": 900, "kid": "k9"},
            ]
        });
        assert_eq!(text, value.to_string());
    }

    #[test]
    fn pages_round_trip() {
        let text = serde_json::to_vec(&page()).unwrap();
        assert_eq!(serde_json::from_slice::<Page>(&text).unwrap(), page());
    }

    #[test]
    fn an_unknown_kind_is_read_without_a_target() {
        let page: Page = serde_json::from_value(json!({
            "seq": 5, "more": false, "snapshot": false,
            "entries": [
                {"seq": 4, "aud": "orders", "exp": 900},
                {"seq": 5, "jti": "j-1", "exp": 900, "later": [1]},
            ]
        }))
        .unwrap();
        assert_eq!(page.entries[0].target, None);
        assert_eq!(page.entries[0].seq, 4);
        assert_eq!(
            page.entries[1],
            Entry::new(5, RuleKind::Jti, "j-1".into(), None, 900)
        );
    }

    #[test]
    fn missing_members_are_refused() {
        let entry = json!({"seq": 1, "jti": "j-1", "exp": 900});
        let full = json!({"seq": 1, "more": false, "snapshot": false, "entries": [entry]});
        assert!(serde_json::from_value::<Page>(full.clone()).is_ok());
        for member in ["seq", "more", "entries"] {
            let mut p = full.clone();
            p.as_object_mut().unwrap().remove(member);
            assert!(serde_json::from_value::<Page>(p).is_err(), "{member}");
        }
        for member in ["seq", "exp"] {
            let mut e = entry.clone();
            e.as_object_mut().unwrap().remove(member);
            let p = json!({"seq": 1, "more": false, "entries": [e]});
            assert!(serde_json::from_value::<Page>(p).is_err(), "{member}");
        }
        // A target of the wrong type is not skipped: the page is broken.
        let p = json!({"seq": 1, "more": false, "entries": [{"seq": 1, "jti": 5, "exp": 9}]});
        assert!(serde_json::from_value::<Page>(p).is_err());
    }

    #[test]
    fn a_page_without_snapshot_is_not_one() {
        let page: Page =
            serde_json::from_value(json!({"seq": 0, "more": false, "entries": []})).unwrap();
        assert!(!page.snapshot);
    }
}
