//! tessera-verify against a controllable key server over HTTP and against
//! a real `tessera serve`.
#![allow(clippy::unwrap_used)] // test set-up: a failure should stop the test

mod feed;
mod keyserver;
mod layer;
mod remote;
mod serve;
