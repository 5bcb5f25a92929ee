//! Route rules, and which of them govern a request's canonical path.
//!
//! Prefixes match whole decoded segments of the [`CanonicalPath`]. The
//! longest route whose prefix the path spells exactly governs (the default
//! audience when none does). That is what an upstream that reads paths
//! byte for byte sees; a lenient upstream — one that ignores letter case,
//! reads full-width `ａｄｍｉｎ` or `Admın` as `admin`, drops trailing dots
//! and spaces (`/admin./users`), or takes a last segment's `.json` for a
//! format (`/admin.json`) — may instead serve a *longer* route for
//! the same request. So every [`Matching::Lenient`] protected route at
//! least as long as the exact match that the path matches leniently
//! governs too, and the request must satisfy all of them: a spelling never
//! gets weaker protection than any reading of it deserves. A public route
//! never opens any spelling but its own, since it only ever removes
//! requirements.

use crate::path::{self, CanonicalPath};

/// What a path prefix requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// No token needed; identity headers are still stripped.
    Public,
    /// A valid token for `audience` carrying every scope.
    Protected {
        /// Required audience.
        audience: String,
        /// Required scopes.
        scopes: Vec<String>,
    },
}

/// Which spellings of a path a route's prefix covers besides its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Matching {
    /// The default (`case_sensitive = false`): the route also covers the
    /// spellings a lenient upstream reads as its own — other letter case
    /// (ASCII and Unicode), compatibility forms (full-width letters,
    /// ligatures), dropped accents and invisible characters, trailing dots
    /// and spaces, and a format suffix on the path's last segment
    /// (`/admin.json`).
    #[default]
    Lenient,
    /// `case_sensitive = true`: only its exact spelling, for an upstream
    /// that tells the others apart.
    Exact,
}

/// One route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The prefix in canonical form (`/` for the root).
    pub prefix: String,
    /// What it requires.
    pub rule: Rule,
    /// Which other spellings it covers.
    pub matching: Matching,
    /// Decoded segments.
    segments: Vec<String>,
    /// The same, folded (see [`fold`]).
    folded: Vec<String>,
}

impl Route {
    /// A route for `prefix`: segments of unreserved characters (`A-Z a-z
    /// 0-9 - . _ ~`) or non-ASCII text, so that its escaped and literal
    /// spellings can never mean two things.
    ///
    /// # Errors
    /// What is wrong with the prefix.
    pub(crate) fn new(prefix: &str, rule: Rule, matching: Matching) -> Result<Self, String> {
        let Some(rest) = prefix.strip_prefix('/') else {
            return Err("must start with /".into());
        };
        let rest = rest.trim_end_matches('/');
        let mut text = String::new();
        let mut segments = Vec::new();
        if !rest.is_empty() {
            for raw in rest.split('/') {
                if raw.is_empty() {
                    return Err("has an empty segment (//)".into());
                }
                let s = path::segment(raw).map_err(|e| format!("{raw:?} is refused ({e})"))?;
                if s.decoded == "." || s.decoded == ".." {
                    return Err(format!("{raw:?}: no dot-segments"));
                }
                if let Some(c) = s
                    .decoded
                    .chars()
                    .find(|c| c.is_ascii() && !path::unreserved(*c as u8))
                {
                    return Err(format!(
                        "{c:?} in {raw:?}: a prefix holds only letters, digits, - . _ ~ and non-ASCII text"
                    ));
                }
                text.push('/');
                text.push_str(&s.text);
                segments.push(s.decoded);
            }
        }
        if text.is_empty() {
            text.push('/');
        }
        Ok(Self {
            prefix: text,
            rule,
            matching,
            folded: segments.iter().map(|s| fold(s)).collect(),
            segments,
        })
    }

    fn matches_exactly(&self, path: &[String]) -> bool {
        path.get(..self.segments.len()) == Some(&self.segments[..])
    }
}

/// Two routes that would govern the same spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Clash {
    /// Index of the earlier route.
    pub(crate) first: usize,
    /// Index of the later one.
    pub(crate) second: usize,
    /// Same prefix (false: the same only when read leniently).
    pub(crate) exact: bool,
}

/// The routes, longest first, and the rule for paths none of them matches.
#[derive(Clone, Debug)]
pub struct Routes {
    routes: Vec<Route>,
    default: Rule,
}

impl Routes {
    /// A table; `default` governs paths no route matches.
    ///
    /// # Errors
    /// Two routes with the same prefix, or prefixes that differ only in a
    /// lenient reading while one of them is [`Matching::Lenient`].
    pub(crate) fn new(routes: Vec<Route>, default: Rule) -> Result<Self, Clash> {
        for (second, b) in routes.iter().enumerate() {
            for (first, a) in routes[..second].iter().enumerate() {
                let exact = a.segments == b.segments;
                let lenient = (a.matching == Matching::Lenient || b.matching == Matching::Lenient)
                    && a.folded == b.folded;
                if exact || lenient {
                    return Err(Clash {
                        first,
                        second,
                        exact,
                    });
                }
            }
        }
        let mut routes = routes;
        routes.sort_by_key(|r| std::cmp::Reverse(r.segments.len()));
        Ok(Self { routes, default })
    }

    /// The routes, longest first.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// The protected rules a request for `path` must satisfy, every one of
    /// them, the exact match first; empty when it needs no token.
    #[must_use]
    pub fn rules_for(&self, path: &CanonicalPath) -> Vec<&Rule> {
        let segments = path.segments();
        let exact = self.routes.iter().find(|r| r.matches_exactly(segments));
        let (rule, floor) = exact.map_or((&self.default, 0), |r| (&r.rule, r.segments.len()));
        let mut rules = Vec::with_capacity(1);
        if matches!(rule, Rule::Protected { .. }) {
            rules.push(rule);
        }
        for r in &self.routes {
            if r.segments.len() < floor {
                break; // longest first: nothing shorter can govern
            }
            let candidate = r.matching == Matching::Lenient
                && matches!(r.rule, Rule::Protected { .. })
                && r.segments.len() <= segments.len()
                && !exact.is_some_and(|e| std::ptr::eq(e, r));
            // Only the path's last segment may carry a format suffix.
            let last = segments.len();
            if candidate
                && segments
                    .iter()
                    .zip(&r.folded)
                    .enumerate()
                    .all(|(i, (s, f))| folds_to(s, f, i + 1 == last))
                && !rules.contains(&&r.rule)
            {
                rules.push(&r.rule);
            }
        }
        rules
    }
}

/// A segment as the most lenient upstream could read it: compatibility
/// decomposition (NFKD: `ａ` is `a`, `ﬁ` is `fi`, the Kelvin sign `K`),
/// combining marks and invisible characters dropped (`İ` is `I`), letter
/// case folded, trailing dots and spaces removed (Windows file names).
pub(crate) fn fold(segment: &str) -> String {
    let base = if segment.is_ascii() {
        segment.to_ascii_lowercase()
    } else {
        path::compatibility(segment).to_uppercase().to_lowercase()
    };
    base.trim_end_matches(['.', ' ']).to_owned()
}

/// `fold(segment) == folded`, without allocating for ASCII segments (the
/// folded form of ASCII is lower-case ASCII). With `suffix` (the path's
/// last segment), also `folded` followed by a `.` and anything: Rails
/// routes (`(.:format)`) and Spring suffix patterns serve `/admin.json`
/// as `/admin`.
fn folds_to(segment: &str, folded: &str, suffix: bool) -> bool {
    let read = if segment.is_ascii() {
        std::borrow::Cow::Borrowed(segment.trim_end_matches(['.', ' ']))
    } else {
        std::borrow::Cow::Owned(fold(segment))
    };
    if read.eq_ignore_ascii_case(folded) {
        return true;
    }
    suffix
        && read
            .get(..folded.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(folded))
        && read[folded.len()..].starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protected(audience: &str, scope: &str) -> Rule {
        Rule::Protected {
            audience: audience.into(),
            scopes: if scope.is_empty() {
                vec![]
            } else {
                vec![scope.into()]
            },
        }
    }

    fn table(routes: &[(&str, Rule, Matching)]) -> Routes {
        let routes = routes
            .iter()
            .map(|(p, r, m)| Route::new(p, r.clone(), *m).unwrap())
            .collect();
        Routes::new(routes, protected("api", "")).unwrap()
    }

    fn rules<'a>(t: &'a Routes, path: &str) -> Vec<&'a Rule> {
        t.rules_for(&CanonicalPath::parse(path).unwrap())
    }

    #[test]
    fn the_longest_exact_prefix_governs_whole_segments() {
        let admin = protected("admin", "admin");
        let t = table(&[
            ("/health", Rule::Public, Matching::Lenient),
            ("/admin", admin.clone(), Matching::Lenient),
            ("/admin/docs", Rule::Public, Matching::Lenient),
        ]);
        let api = protected("api", "");
        assert!(rules(&t, "/health").is_empty());
        assert!(rules(&t, "/health/live/").is_empty());
        assert_eq!(rules(&t, "/healthz"), [&api]);
        assert_eq!(rules(&t, "/admin"), [&admin]);
        assert_eq!(rules(&t, "/admin/users"), [&admin]);
        assert_eq!(rules(&t, "/administrator"), [&api]);
        assert!(rules(&t, "/admin/docs/x").is_empty());
        assert_eq!(rules(&t, "/"), [&api]);
    }

    #[test]
    fn lenient_spellings_add_the_protected_route_they_could_mean() {
        let admin = protected("admin", "admin");
        let t = table(&[
            ("/health", Rule::Public, Matching::Lenient),
            ("/admin", admin.clone(), Matching::Lenient),
            ("/admin/docs", Rule::Public, Matching::Lenient),
        ]);
        let api = protected("api", "");
        for spelling in [
            "/ADMIN/users",
            "/Admin",
            "/aDmIn/x",
            "/admin./users",
            "/admin%20/users",
            "/admin.%20./users",
            "/%EF%BD%81dmin/users",     // full-width a
            "/%EF%BC%A1%EF%BC%A4MIN/x", // full-width AD
            "/adm%C4%B1n",              // dotless i upper-cases to I
            "/ADM%C4%B0N",              // I with a dot above
            "/a%CC%81dmin",             // a + combining acute
            "/ad%C2%ADmin",             // soft hyphen
            "/ad%E2%80%8Bmin",          // zero-width space
            "/%E2%85%A0",               // not admin: Roman numeral one
            "/admin.json",              // a format suffix (Rails, Spring)
            "/Admin.tar.gz",
        ] {
            let got = rules(&t, spelling);
            if spelling == "/%E2%85%A0" {
                assert_eq!(got, [&api], "{spelling}");
            } else {
                assert_eq!(got, [&api, &admin], "{spelling}");
            }
        }
        // A public route never opens another spelling of itself, and a
        // case variant of it stays under the protected route above it.
        assert_eq!(rules(&t, "/HEALTH"), [&api]);
        // The suffix only on the path's last segment, after a whole name.
        assert_eq!(rules(&t, "/admin.json/x"), [&api]);
        assert_eq!(rules(&t, "/adminx.json"), [&api]);
        assert_eq!(rules(&t, "/.json"), [&api]);
        assert_eq!(rules(&t, "/admin/DOCS/x"), [&admin]);
        assert_eq!(rules(&t, "/ADMIN/docs/x"), [&api, &admin]);
    }

    #[test]
    fn exact_routes_cover_only_their_spelling() {
        let internal = protected("internal", "");
        let t = table(&[("/internal", internal.clone(), Matching::Exact)]);
        let api = protected("api", "");
        assert_eq!(rules(&t, "/internal/x"), [&internal]);
        assert_eq!(rules(&t, "/INTERNAL/x"), [&api]);
    }

    #[test]
    fn the_same_rule_is_required_once_and_a_root_route_replaces_the_default() {
        let admin = protected("admin", "admin");
        let t = table(&[
            ("/", admin.clone(), Matching::Lenient),
            ("/admin", admin.clone(), Matching::Lenient),
        ]);
        assert_eq!(rules(&t, "/ADMIN/x"), [&admin]);
        assert_eq!(rules(&t, "/other"), [&admin]);
        let t = table(&[("/", Rule::Public, Matching::Lenient)]);
        assert!(rules(&t, "/anything").is_empty());
    }

    #[test]
    fn the_ascii_shortcut_folds_like_fold() {
        let words = [
            "admin",
            "ADMIN",
            "Admin.",
            "admin. .",
            "adm",
            "café",
            "CAFE",
            "cafe",
            "ｃａｆé",
            "x y ",
        ];
        for a in words {
            for b in words {
                assert_eq!(folds_to(a, &fold(b), false), fold(a) == fold(b), "{a} {b}");
            }
        }
    }

    #[test]
    fn prefixes_must_be_plain() {
        let new = |p: &str| Route::new(p, Rule::Public, Matching::Lenient).map(|r| r.prefix);
        assert_eq!(new("/admin/").unwrap(), "/admin");
        assert_eq!(new("/").unwrap(), "/");
        assert_eq!(new("/%61dmin").unwrap(), "/admin");
        assert_eq!(new("/caf%C3%A9").unwrap(), "/caf%C3%A9");
        assert_eq!(new("/café").unwrap(), "/caf%C3%A9");
        for bad in [
            "admin", "/a//b", "/a/./b", "/a/../b", "/a;x", "/a%2Fb", "/a!", "/a%21", "/a:b",
            "/a@b", "/a b", "/a%00", "/a\\b",
        ] {
            assert!(new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn clashing_prefixes_are_named() {
        let route = |p: &str, m| Route::new(p, Rule::Public, m).unwrap();
        let clash = Routes::new(
            vec![
                route("/a", Matching::Lenient),
                route("/b", Matching::Lenient),
                route("/a/", Matching::Exact),
            ],
            Rule::Public,
        )
        .unwrap_err();
        assert_eq!(
            clash,
            Clash {
                first: 0,
                second: 2,
                exact: true
            }
        );
        let clash = Routes::new(
            vec![
                route("/Admin", Matching::Exact),
                route("/admin", Matching::Lenient),
            ],
            Rule::Public,
        )
        .unwrap_err();
        assert!(!clash.exact);
        // Both exact: an upstream that tells them apart.
        assert!(Routes::new(
            vec![
                route("/Admin", Matching::Exact),
                route("/admin", Matching::Exact)
            ],
            Rule::Public,
        )
        .is_ok());
    }
}
