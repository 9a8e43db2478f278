//! Header rewriting for both directions: hop-by-hop removal, `X-Forwarded-*`,
//! `Via` and the `x-understudy-*` headers. Pure; header names are constants.

use http::header::{
    CONNECTION, HOST, HeaderMap, HeaderName, HeaderValue, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
    VIA,
};
use std::net::IpAddr;

pub const EXCHANGE_ID: HeaderName = HeaderName::from_static("x-understudy-exchange-id");
pub const SERVED_BY: HeaderName = HeaderName::from_static("x-understudy-served-by");
pub const MIRROR: HeaderName = HeaderName::from_static("x-understudy-mirror");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
const PROXY_AUTHENTICATE: HeaderName = HeaderName::from_static("proxy-authenticate");

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    PROXY_AUTHENTICATE,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// The request as the upstream should see it: hop-by-hop headers gone,
/// `X-Forwarded-For` appended, `X-Forwarded-Proto`, `X-Forwarded-Host` and
/// `Via` set. `Host` is dropped: the client sets it from the upstream URL.
pub fn prepare_request(headers: &mut HeaderMap, client_ip: IpAddr, tls: bool, via: &HeaderValue) {
    strip_hop_by_hop(headers);
    let forwarded_for = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prior) => HeaderValue::try_from(format!("{prior}, {client_ip}")),
        None => HeaderValue::try_from(client_ip.to_string()),
    };
    if let Ok(v) = forwarded_for {
        headers.insert(X_FORWARDED_FOR, v);
    }
    let proto = if tls { "https" } else { "http" };
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    if let Some(host) = headers.remove(HOST) {
        headers.insert(X_FORWARDED_HOST, host);
    }
    headers.append(VIA, via.clone());
}

/// The `Via` value for a request of this HTTP version.
pub fn via_value(version: http::Version) -> HeaderValue {
    HeaderValue::from_static(match version {
        http::Version::HTTP_2 => "2 understudy",
        http::Version::HTTP_10 => "1.0 understudy",
        _ => "1.1 understudy",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_hop_by_hop_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-kept"], "yes");
    }

    #[test]
    fn sets_forwarding_headers() {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        h.insert(HOST, HeaderValue::from_static("api.example.com"));
        let via = via_value(http::Version::HTTP_11);
        prepare_request(&mut h, "127.0.0.1".parse().unwrap(), true, &via);
        assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.1, 127.0.0.1");
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
        assert_eq!(h[&X_FORWARDED_HOST], "api.example.com");
        assert_eq!(h[VIA], "1.1 understudy");
        assert!(h.get(HOST).is_none());
    }
}
