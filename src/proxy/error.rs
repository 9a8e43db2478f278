//! `proxy::Error` and its single mapping to a status with a short plain-text body.

use super::body::ProxyBody;
use http::{Response, StatusCode, header};

/// Everything that can end a client's request without the incumbent's answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no route for {path}")]
    NoRoute { path: String },
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    #[error("upstream {target} refused or reset the connection")]
    UpstreamConnect {
        target: &'static str,
        /// No connection could be made (refused, unreachable, TLS handshake);
        /// false when an established connection broke.
        at_connect: bool,
    },
    #[error("upstream {target} did not answer in time")]
    UpstreamTimeout {
        target: &'static str,
        /// The connect timeout fired; false for the response timeout.
        at_connect: bool,
    },
    #[error("upstream {target} sent an invalid response")]
    UpstreamProtocol { target: &'static str },
    #[error("proxy overloaded")]
    Overloaded,
}

impl Error {
    pub fn status(&self) -> StatusCode {
        use Error as E;
        use StatusCode as S;
        match self {
            E::NoRoute { .. } => S::NOT_FOUND,
            E::BodyRead(_) => S::BAD_REQUEST,
            E::UpstreamConnect { .. } | E::UpstreamProtocol { .. } => S::BAD_GATEWAY,
            E::UpstreamTimeout { .. } => S::GATEWAY_TIMEOUT,
            E::Overloaded => S::SERVICE_UNAVAILABLE,
        }
    }

    /// No connection to the upstream could be made (refused, unreachable,
    /// connect timeout): the failures the mirror backs off from.
    pub fn failed_to_connect(&self) -> bool {
        matches!(
            self,
            Error::UpstreamConnect {
                at_connect: true,
                ..
            } | Error::UpstreamTimeout {
                at_connect: true,
                ..
            }
        )
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
