//! `proxy::Error` and its single mapping to a status with a short plain-text body.

use super::body::ProxyBody;
use super::conform::Refusal;
use crate::upstream;
use http::{Response, StatusCode, header};

/// Everything that can end a client's request without the incumbent's answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no route for {path}")]
    NoRoute { path: String },
    #[error("the path {path} has a dot-segment (`.` or `..`); send it resolved")]
    DotSegment { path: String },
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    #[error(transparent)]
    Upstream(#[from] upstream::Error),
    #[error("proxy overloaded")]
    Overloaded,
    #[error("request body not received within body_read_timeout")]
    BodyTimeout,
    #[error("too many request header fields")]
    TooManyHeaders,
    #[error(transparent)]
    Refused(#[from] Refusal),
}

impl Error {
    pub fn status(&self) -> StatusCode {
        use StatusCode as S;
        match self {
            Error::NoRoute { .. } => S::NOT_FOUND,
            Error::DotSegment { .. } => S::BAD_REQUEST,
            Error::BodyRead(_) => S::BAD_REQUEST,
            Error::Upstream(upstream::Error::Timeout { .. }) => S::GATEWAY_TIMEOUT,
            Error::Upstream(_) => S::BAD_GATEWAY,
            Error::Overloaded => S::SERVICE_UNAVAILABLE,
            Error::BodyTimeout => S::REQUEST_TIMEOUT,
            Error::TooManyHeaders => S::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Error::Refused(Refusal::TransferCoding) => S::NOT_IMPLEMENTED,
            Error::Refused(_) => S::BAD_REQUEST,
        }
    }

    /// The one place an error becomes a response.
    pub fn to_response(&self) -> Response<ProxyBody> {
        let mut resp = Response::new(ProxyBody::text(format!("{self}\n")));
        *resp.status_mut() = self.status();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        resp
    }
}
