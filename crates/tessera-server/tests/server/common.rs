//! Shared set-up, from the one harness in `tessera-testkit`: every test
//! body runs once per backend (SQLite always, PostgreSQL when
//! TESSERA_TEST_DATABASE_URL is set), against a real server on an
//! ephemeral port with an injected clock.

pub(crate) use tessera_testkit::{
    backends, config, config_file, count_rows, oauth_error, verify, Backend, TestServer, ISSUER,
    METRICS, T0,
};
