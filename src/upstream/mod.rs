//! Calls to upstreams: the incumbent, the candidate, the judge and a noise
//! secondary. Pooled clients ([`Client`]), their error type ([`Error`]), the
//! connect back-off ([`backoff`]), request bodies ([`body`]), the one place an
//! upstream request is built ([`request`]) and the one bounded call
//! ([`Client::call`]: permit → send → capped read → timeout).

pub mod backoff;
pub mod body;
mod call;
mod client;
mod error;

pub use call::{Bounds, Called};
pub use client::{Client, tls_client_config};
pub use error::Error;

use body::UpBody;
use http::{HeaderMap, Method, Request, Uri};

/// An upstream request: the one constructor every caller uses.
pub fn request(method: Method, uri: Uri, headers: HeaderMap, body: UpBody) -> Request<UpBody> {
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    req
}
