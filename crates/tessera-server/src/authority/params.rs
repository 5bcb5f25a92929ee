//! The parameters of an OAuth request (RFC 6749 §3.2), and the token type
//! names of RFC 8693 §3 that grants and answers share.

use std::collections::HashMap;

use super::OAuthError;

/// RFC 8693 §3: a Tessera access token.
pub(crate) const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 §3: a JWT (federation's upstream tokens).
pub(crate) const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// The form parameters of an OAuth request, each at most once (RFC 6749
/// §3.2), empty ones left out.
#[derive(Default)]
pub(crate) struct Params(HashMap<String, String>);

impl std::fmt::Debug for Params {
    /// The names only: values include client secrets, assertions and
    /// tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.0.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Params").field("names", &names).finish()
    }
}

impl Params {
    /// Parameters from (name, value) pairs; the first name repeated is the
    /// error.
    ///
    /// # Errors
    /// The repeated name.
    pub(crate) fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
    ) -> Result<Self, String> {
        let mut params = HashMap::new();
        for (name, value) in pairs {
            // RFC 6749 §3.2: a parameter sent without a value is omitted.
            if value.is_empty() {
                continue;
            }
            if params
                .insert(name.to_string(), value.into_owned())
                .is_some()
            {
                return Err(name.into_owned());
            }
        }
        Ok(Self(params))
    }

    /// Every parameter, in no particular order.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Whether `name` was sent.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The value of `name`, or `invalid_request` naming it.
    ///
    /// # Errors
    /// `invalid_request`: "`name` is missing".
    pub(crate) fn required(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("{name} is missing")))
    }
}

/// `audience` or RFC 8707 `resource`, as sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) audience: Option<&'a str>,
    pub(crate) resource: Option<&'a str>,
}

impl<'a> Target<'a> {
    pub(crate) fn of(params: &'a Params) -> Self {
        Self {
            audience: params.get("audience"),
            resource: params.get("resource"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn debug_names_the_parameters_and_never_shows_a_value() {
        let pairs = [
            ("client_secret".into(), "tcs_very_secret".into()),
            ("refresh_token".into(), "tsr_also_secret".into()),
        ];
        let params = Params::from_pairs(pairs).unwrap();
        let shown = format!("{params:?}");
        assert!(
            shown.contains("client_secret") && shown.contains("refresh_token"),
            "{shown}"
        );
        assert!(
            !shown.contains("tcs_") && !shown.contains("tsr_"),
            "{shown}"
        );
    }

    #[test]
    fn a_repeated_parameter_is_named_and_an_empty_one_is_left_out() {
        let repeated = [("scope".into(), "a".into()), ("scope".into(), "b".into())];
        assert_eq!(Params::from_pairs(repeated).unwrap_err(), "scope");
        let empty = [("scope".into(), "".into())];
        assert!(!Params::from_pairs(empty).unwrap().contains("scope"));
    }
}
