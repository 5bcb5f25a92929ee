//! The axum extractor: the claims [`VerifyLayer`](crate::VerifyLayer)
//! verified, as any `T: Deserialize`.

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;
use serde::de::DeserializeOwned;

use crate::layer::VerifiedToken;

/// The verified claims as `T`. Needs [`VerifyLayer`](crate::VerifyLayer)
/// on the route: without it the handler answers 500, since serving the
/// route unauthenticated would be worse.
#[derive(Debug, Clone)]
pub struct Claims<T>(pub T);

/// Why [`Claims`] could not be extracted.
#[derive(Debug)]
pub enum ClaimsRejection {
    /// No `VerifyLayer` ran for this route.
    NoLayer,
    /// The verified claims do not have `T`'s shape.
    Shape,
}

impl IntoResponse for ClaimsRejection {
    fn into_response(self) -> Response {
        match self {
            Self::NoLayer => {
                tracing::error!("Claims<T> used on a route without VerifyLayer");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
            Self::Shape => {
                let mut r = StatusCode::UNAUTHORIZED.into_response();
                r.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static(
                        "Bearer error=\"invalid_token\", error_description=\"claims do not have the expected shape\"",
                    ),
                );
                r
            }
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Claims<T> {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let token = parts
            .extensions
            .get::<VerifiedToken>()
            .ok_or(ClaimsRejection::NoLayer)?;
        T::deserialize(&*token.claims)
            .map(Claims)
            .map_err(|_| ClaimsRejection::Shape)
    }
}
