//! One module per grant that acts for a user: each parses its parameters
//! ([`Request::parse`](jwt_bearer::Request::parse)) and turns them into a
//! [`Basis`](super::basis::Basis). `client_credentials` needs neither and
//! lives in `grant.rs`.

pub(crate) mod exchange;
pub(crate) mod federation;
pub(crate) mod jwt_bearer;
pub(crate) mod refresh;
