//! Registered clients: RFC 7591 metadata, registration rules, secrets, and
//! the in-memory table the token endpoint reads (no database read per
//! request).
//!
//! `metadata` is what is stored (and its typed members), `registration`
//! what a request must satisfy to become it, `table` the clients as the
//! token endpoint holds them. The rules shared with the rest of the server
//! (subject namespaces, server-owned claims) are here.

mod metadata;
mod registration;
mod table;

pub(crate) use crate::vocabulary::{GrantType, RESERVED_CLAIMS};
pub(crate) use metadata::{AuthMethod, Metadata, TokenFormat, REVOCATIONS_READ};
pub(crate) use registration::{assertion_keys, federation_conflict, Registration, ASSERTION_ALGS};
pub(crate) use table::{new_secret, Client, ClientTable};

/// Every client id starts with this (then 128 random bits, base64url); a
/// `client_credentials` token's `sub` is its client id, so no user subject
/// may start with it (in any letter case).
pub(crate) const CLIENT_ID_PREFIX: &str = "tc_";

/// Why a jwt-bearer assertion's `sub` cannot be a user's subject, if it
/// cannot: subjects from different sources never share a name. Client ids
/// (`tc_...`, the `sub` of a client's own tokens) and federated subjects
/// (`<prefix>|<upstream sub>`) are namespaces of their own; a login
/// backend's user is neither.
pub(crate) fn user_subject_refusal(sub: &str) -> Option<String> {
    let prefix = CLIENT_ID_PREFIX.len();
    if sub
        .get(..prefix)
        .is_some_and(|p| p.eq_ignore_ascii_case(CLIENT_ID_PREFIX))
    {
        return Some(format!(
            "sub must not start with {CLIENT_ID_PREFIX:?}: that namespace is the client ids'"
        ));
    }
    if sub.contains(crate::config::SUBJECT_SEPARATOR) {
        return Some(format!(
            "sub must not contain {:?}: it separates a federated subject's prefix from its upstream subject",
            crate::config::SUBJECT_SEPARATOR
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_subjects_stay_out_of_other_namespaces() {
        for ok in ["user-42", "alice@example.com", "tc", "t_c_1", "xtc_1"] {
            assert_eq!(user_subject_refusal(ok), None, "{ok}");
        }
        for (bad, why) in [
            ("tc_Zm9vYmFyYmF6cXV4cXV1eA", "client ids"),
            ("TC_abc", "client ids"),
            ("login.example.com|alice", "federated"),
        ] {
            let e = user_subject_refusal(bad).unwrap();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
