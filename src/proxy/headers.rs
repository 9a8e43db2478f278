//! Header rewriting for both directions: hop-by-hop removal, `X-Forwarded-*`,
//! `Via` and the `x-understudy-*` headers. Pure; header names are constants.

use http::header::{
    CONNECTION, FORWARDED, HOST, HeaderMap, HeaderName, HeaderValue, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE, VIA,
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

const HOPS: usize = 8;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1);
/// `Connection` first.
const HOP_BY_HOP: [HeaderName; HOPS] = [
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
    // One pass over the (few) names first: most messages carry no hop-by-hop
    // header, or only `Connection: keep-alive`; only the names that are there
    // are hashed and removed.
    let mut present = [false; HOPS];
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present[i] = true;
        }
    }
    if present[0] {
        // The names `Connection` lists, other than the hop-by-hop ones
        // removed below anyway (so `keep-alive` allocates nothing).
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|name| {
                !HOP_BY_HOP
                    .iter()
                    .any(|h| name.eq_ignore_ascii_case(h.as_str()))
            })
            .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
            .collect();
        for name in &named {
            headers.remove(name);
        }
    }
    for (name, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, there)| *there) {
        headers.remove(name);
    }
}

/// What the forwarding headers say about one client connection, rendered
/// once when it is accepted rather than for every request on it.
pub struct Forwarding {
    client_ip: IpAddr,
    /// `X-Forwarded-For` when the client sent none: the client's address.
    for_value: Option<HeaderValue>,
    /// `X-Forwarded-Proto`.
    proto: &'static str,
    /// The `Forwarded` element without its host: `for=…;proto=…`.
    element: String,
}

impl Forwarding {
    pub fn new(client_ip: IpAddr, tls: bool) -> Forwarding {
        let proto = if tls { "https" } else { "http" };
        let mut element = match client_ip {
            IpAddr::V4(ip) => format!("for={ip}"),
            IpAddr::V6(ip) => format!("for=\"[{ip}]\""),
        };
        element.push_str(";proto=");
        element.push_str(proto);
        Forwarding {
            client_ip,
            for_value: HeaderValue::try_from(client_ip.to_string()).ok(),
            proto,
            element,
        }
    }

    /// The RFC 7239 `Forwarded` element for this hop (quoted where the grammar asks).
    fn forwarded(&self, host: Option<&HeaderValue>) -> Option<HeaderValue> {
        // A host with characters outside a token (`:` of a port) is quoted; one
        // that cannot be quoted safely is left out.
        match host.and_then(|h| h.to_str().ok()) {
            Some(host) if !host.contains(['"', '\\']) => {
                let mut out = String::with_capacity(self.element.len() + host.len() + 8);
                out.push_str(&self.element);
                out.push_str(";host=\"");
                out.push_str(host);
                out.push('"');
                HeaderValue::try_from(out).ok()
            }
            _ => HeaderValue::try_from(self.element.as_str()).ok(),
        }
    }
}

/// The request as the upstream should see it: hop-by-hop headers and a
/// client's own `x-understudy-mirror` gone, `X-Forwarded-For` appended,
/// `X-Forwarded-Proto`, `X-Forwarded-Host`, `Forwarded` and `Via` set by us
/// whatever the client sent (docs/src/reference/limits.md). The host is the request's one `Host`
/// header, as [`super::conform::one_host`] left it (also for HTTP/2's
/// `:authority`); `Host` itself is dropped: the client sets it from the
/// upstream URL.
pub fn prepare_request(headers: &mut HeaderMap, hop: &Forwarding, via: &HeaderValue) {
    strip_hop_by_hop(headers);
    headers.remove(MIRROR);
    let forwarded_for = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prior) => HeaderValue::try_from(format!("{prior}, {}", hop.client_ip)).ok(),
        None => hop.for_value.clone(),
    };
    if let Some(v) = forwarded_for {
        headers.insert(X_FORWARDED_FOR, v);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(hop.proto));
    let host = headers.remove(HOST);
    headers.remove(X_FORWARDED_HOST);
    let forwarded = hop.forwarded(host.as_ref());
    if let Some(host) = host {
        headers.insert(X_FORWARDED_HOST, host);
    }
    headers.remove(FORWARDED);
    if let Some(v) = forwarded {
        headers.insert(FORWARDED, v);
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
        // Several `Connection` lines, names in any case, a listed hop-by-hop
        // name, and an option (`close`) that is also a field's name.
        let mut h = HeaderMap::new();
        h.append(CONNECTION, HeaderValue::from_static("Upgrade , close"));
        h.append(CONNECTION, HeaderValue::from_static("X-Other"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("close", HeaderValue::from_static("1"));
        h.insert("x-other", HeaderValue::from_static("1"));
        h.insert(TE, HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.keys().collect::<Vec<_>>(), ["x-kept"]);
        // None there: nothing changes.
        let mut h = HeaderMap::new();
        h.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn sets_forwarding_headers() {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        h.insert(HOST, HeaderValue::from_static("api.example.com"));
        let via = via_value(http::Version::HTTP_11);
        h.insert(MIRROR, HeaderValue::from_static("1"));
        h.insert(FORWARDED, HeaderValue::from_static("for=6.6.6.6;host=evil"));
        let hop = Forwarding::new("127.0.0.1".parse().unwrap(), true);
        prepare_request(&mut h, &hop, &via);
        assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.1, 127.0.0.1");
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
        assert_eq!(h[&X_FORWARDED_HOST], "api.example.com");
        assert_eq!(
            h[FORWARDED],
            "for=127.0.0.1;proto=https;host=\"api.example.com\""
        );
        assert_eq!(h[VIA], "1.1 understudy");
        assert!(h.get(HOST).is_none());
        assert!(h.get(MIRROR).is_none(), "a client's mirror mark is removed");
    }

    #[test]
    fn the_host_of_an_http2_request_comes_from_its_authority_not_the_client() {
        // `conform::one_host` leaves `:authority` as the one Host header.
        let mut req = http::Request::get("http://api.example.com:8443/x")
            .version(http::Version::HTTP_2)
            .header(X_FORWARDED_HOST, "evil.example")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert!(super::super::conform::one_host(&mut req).is_ok());
        let mut h = req.headers;
        let via = via_value(http::Version::HTTP_2);
        let hop = Forwarding::new("::1".parse().unwrap(), false);
        prepare_request(&mut h, &hop, &via);
        assert_eq!(h[&X_FORWARDED_HOST], "api.example.com:8443");
        assert_eq!(
            h[FORWARDED],
            "for=\"[::1]\";proto=http;host=\"api.example.com:8443\""
        );
        // No host: the client's value is not passed on.
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_HOST, HeaderValue::from_static("evil.example"));
        let hop = Forwarding::new("10.1.1.1".parse().unwrap(), false);
        prepare_request(&mut h, &hop, &via);
        assert!(h.get(X_FORWARDED_HOST).is_none());
        assert_eq!(h[FORWARDED], "for=10.1.1.1;proto=http");
    }
}
