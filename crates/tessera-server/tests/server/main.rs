//! HTTP-level tests of `tessera serve` against a real listener, on SQLite
//! and (when TESSERA_TEST_DATABASE_URL is set) PostgreSQL.
#![allow(clippy::unwrap_used)] // test set-up: a failure should stop the test

mod admin;
mod assertion_jti;
mod clock_guard;
mod common;
mod connections;
mod exchange;
mod federation;
mod feed_paging;
mod grants;
mod handles;
mod idp;
mod key_notifications;
mod lifecycle;
mod lifecycle_model;
mod next_key;
mod outage;
mod races;
mod refresh;
mod retention;
mod revoke;
mod revoke_all;
mod surface;
mod token;
mod unknown_kid;
