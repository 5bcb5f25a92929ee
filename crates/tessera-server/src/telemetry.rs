//! Prometheus metrics. Each server owns its recorder (several servers may
//! share a test process) and hands out counter handles once, so the hot
//! path increments an atomic instead of looking a name up.

use std::fmt;

use metrics::{Counter, Gauge, Key, Label, Level, Metadata, Recorder as _};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::vocabulary::GrantType;

/// Token endpoint error codes counted by `tessera_token_errors_total`.
pub(crate) const ERROR_CODES: [&str; 10] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
    "server_error",
    "temporarily_unavailable",
    "other",
];

/// One client's issuance counters, one per grant (handles: no registry
/// lookup per token).
#[derive(Clone)]
pub(crate) struct IssuedCounters([Counter; GrantType::ALL.len()]);

impl IssuedCounters {
    /// Counts a token issued through `grant`.
    pub(crate) fn count(&self, grant: GrantType) {
        self.0[grant as usize].increment(1);
    }
}

impl fmt::Debug for IssuedCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCounters").finish_non_exhaustive()
    }
}

/// The server's metrics.
pub(crate) struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    errors: Vec<Counter>,
    /// JWKS requests served (200 and 304).
    pub jwks_requests: Counter,
    /// Spent refresh tokens presented again (each revoked a family).
    pub refresh_reuse: Counter,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

static META: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

impl Metrics {
    /// A fresh registry.
    pub(crate) fn new() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        recorder.describe_counter(
            "tessera_tokens_issued_total".into(),
            None,
            "Access tokens issued, by grant and client".into(),
        );
        recorder.describe_counter(
            "tessera_token_errors_total".into(),
            None,
            "Token endpoint errors, by RFC 6749 error code".into(),
        );
        recorder.describe_counter(
            "tessera_jwks_requests_total".into(),
            None,
            "JWKS document requests (200 and 304)".into(),
        );
        recorder.describe_gauge(
            "tessera_active_key_age_seconds".into(),
            None,
            "Age of the active signing key, by algorithm".into(),
        );
        let errors = ERROR_CODES
            .iter()
            .map(|code| {
                recorder.register_counter(
                    &Key::from_parts(
                        "tessera_token_errors_total",
                        vec![Label::new("code", *code)],
                    ),
                    &META,
                )
            })
            .collect();
        let jwks_requests =
            recorder.register_counter(&Key::from_name("tessera_jwks_requests_total"), &META);
        let refresh_reuse =
            recorder.register_counter(&Key::from_name("tessera_refresh_token_reuse_total"), &META);
        Self {
            recorder,
            handle,
            errors,
            jwks_requests,
            refresh_reuse,
        }
    }

    /// The issuance counters of one client, one per grant.
    pub(crate) fn issued(&self, client_id: &str) -> IssuedCounters {
        IssuedCounters(GrantType::ALL.map(|grant| {
            self.recorder.register_counter(
                &Key::from_parts(
                    "tessera_tokens_issued_total",
                    vec![
                        Label::new("grant", grant.metric_label()),
                        Label::new("client", client_id.to_owned()),
                    ],
                ),
                &META,
            )
        }))
    }

    /// Counts a token endpoint error.
    pub(crate) fn error(&self, code: &str) {
        let i = ERROR_CODES
            .iter()
            .position(|c| *c == code)
            .unwrap_or(ERROR_CODES.len() - 1);
        if let Some(counter) = self.errors.get(i) {
            counter.increment(1);
        }
    }

    /// The gauge of the active key's age for `alg`.
    pub(crate) fn key_age(&self, alg: &'static str) -> Gauge {
        self.recorder.register_gauge(
            &Key::from_parts(
                "tessera_active_key_age_seconds",
                vec![Label::new("alg", alg)],
            ),
            &META,
        )
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        self.handle.render()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_grant_counts_under_its_own_label() {
        let m = Metrics::new();
        let issued = m.issued("tc_a");
        issued.count(GrantType::RefreshToken);
        issued.count(GrantType::RefreshToken);
        issued.count(GrantType::TokenExchange);
        let text = m.render();
        for (grant, n) in [
            ("client_credentials", 0),
            ("jwt_bearer", 0),
            ("refresh_token", 2),
            ("token_exchange", 1),
        ] {
            let line =
                format!("tessera_tokens_issued_total{{grant=\"{grant}\",client=\"tc_a\"}} {n}\n");
            assert!(text.contains(&line), "{line}{text}");
        }
    }
}
