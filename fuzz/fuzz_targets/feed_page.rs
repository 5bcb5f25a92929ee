//! Fuzzes a page of the deny-list feed as the follower reads and applies
//! it (`GET /revocations?since=SEQ`).
//!
//! Invariants beyond "never panics":
//! - a page the follower reads, written out again by the authority's
//!   writer (the same types), reads back equal;
//! - applying the same page twice (a retried request) changes nothing more;
//! - what the page revokes is refused: for each target, the entry listed
//!   last for it covers a token of that target at its `exp`, issued before
//!   its `not_before`.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use tessera_verify::feed_format::Entry;
use tessera_verify::fuzzing::feed_page;
use tessera_verify::{DenyList, RuleKind, TokenFacts};

fuzz_target!(|data: &[u8]| {
    let list = DenyList::new();
    let Some(page) = feed_page(&list, data) else {
        assert!(
            list.is_empty() && list.seq() == 0,
            "a refused page changed the list"
        );
        return;
    };
    let text = serde_json::to_vec(&page).expect("a page is JSON");
    let other = DenyList::new();
    let again = feed_page(&other, &text).expect("a written page refused");
    assert_eq!(again, page, "{}", String::from_utf8_lossy(&text));

    let (len, seq) = (list.len(), list.seq());
    assert!(feed_page(&list, data).is_some());
    assert_eq!((list.len(), list.seq()), (len, seq), "a page applied twice");

    let mut last: HashMap<(RuleKind, &str), &Entry> = HashMap::new();
    for e in &page.entries {
        if let Some(t) = &e.target {
            last.insert((t.kind, t.value.as_str()), e);
        }
    }
    for ((kind, value), e) in last {
        // A token issued before the rule's bound (any token without one).
        let Some(iat) = e.not_before.map_or(Some(i64::MIN), |n| n.checked_sub(1)) else {
            continue; // nothing is issued before i64::MIN
        };
        let mut token = TokenFacts {
            jti: None,
            sub: None,
            client_id: None,
            kid: None,
            iat: Some(iat),
        };
        match kind {
            RuleKind::Jti => token.jti = Some(value),
            RuleKind::Subject => token.sub = Some(value),
            RuleKind::Client => token.client_id = Some(value),
            RuleKind::Kid => token.kid = Some(value),
        }
        assert!(
            list.refuses(token, e.exp),
            "{kind:?} {value:?} not refused at its exp"
        );
    }
});
