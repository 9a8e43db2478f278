//! What a request must be before it is routed or forwarded (README "HTTP
//! conformance"): one valid host, decided once ([`one_host`]; RFC 9112 §3.2,
//! RFC 9113 §8.3.1); no transfer coding but `chunked` (RFC 9112 §6.1); no
//! HTTP/2 field value with whitespace at either end (RFC 9113 §8.2.1); and
//! header names with `_` dropped unless `listen.underscores_in_headers`.

use crate::metrics::Rejected;
use http::Version;
use http::header::{HOST, HeaderMap, HeaderName, HeaderValue, TRANSFER_ENCODING};
use http::request::Parts;

/// Why a request is refused before anything is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("an HTTP/1.1 request needs a Host header")]
    NoHost,
    #[error("more than one Host header")]
    ManyHosts,
    #[error("invalid Host header")]
    InvalidHost,
    #[error("invalid authority in the request target (userinfo is not accepted)")]
    InvalidAuthority,
    #[error("the Host header does not name the request target's authority")]
    HostMismatch,
    #[error("transfer coding not implemented: only chunked is")]
    TransferCoding,
    #[error("chunked applied more than once")]
    ChunkedTwice,
    #[error("an HTTP/2 field value begins or ends with whitespace")]
    FieldWhitespace,
}

impl Refusal {
    /// The `limit` label it is counted under.
    pub fn limit(self) -> Rejected {
        match self {
            Refusal::NoHost
            | Refusal::ManyHosts
            | Refusal::InvalidHost
            | Refusal::InvalidAuthority
            | Refusal::HostMismatch => Rejected::Host,
            Refusal::TransferCoding | Refusal::ChunkedTwice => Rejected::TransferCoding,
            Refusal::FieldWhitespace => Rejected::FieldValue,
        }
    }
}

/// Checks the request head and leaves it as the proxy routes and forwards
/// it: its one host as its only `Host` header, names with `_` gone (unless
/// allowed). `handle::admit` counts a refusal and answers it.
pub fn check(parts: &mut Parts, underscores_in_headers: bool) -> Result<(), Refusal> {
    fields(parts, underscores_in_headers)?;
    one_host(parts).map(drop)
}

/// One pass over the header fields: transfer codings, HTTP/2 field values,
/// names with `_`.
fn fields(parts: &mut Parts, underscores: bool) -> Result<(), Refusal> {
    let h2 = parts.version == Version::HTTP_2;
    let (mut chunked, mut underscored) = (0, false);
    for (name, value) in &parts.headers {
        let v = value.as_bytes();
        if h2 && (v.first().is_some_and(is_ws) || v.last().is_some_and(is_ws)) {
            return Err(Refusal::FieldWhitespace);
        }
        if name == TRANSFER_ENCODING {
            // hyper decodes the body when the last coding is `chunked`; any
            // other coding would be lost with the header (hop-by-hop, so not
            // forwarded): refused instead (RFC 9112 §6.1).
            for coding in v.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if coding.eq_ignore_ascii_case(b"chunked") {
                    chunked += 1;
                } else if !coding.is_empty() {
                    return Err(Refusal::TransferCoding);
                }
            }
        }
        underscored |= !underscores && name.as_str().as_bytes().contains(&b'_');
    }
    if chunked > 1 {
        return Err(Refusal::ChunkedTwice);
    }
    if underscored {
        let names: Vec<HeaderName> = parts
            .headers
            .keys()
            .filter(|n| n.as_str().contains('_'))
            .cloned()
            .collect();
        for name in &names {
            parts.headers.remove(name);
        }
        tracing::debug!(?names, "Dropped header names with an underscore");
    }
    Ok(())
}

fn is_ws(b: &u8) -> bool {
    matches!(b, b' ' | b'\t')
}

/// The request's one host: the target's authority when it has one
/// (absolute-form, HTTP/2 `:authority`), else its `Host` header. It must be
/// valid ([`valid_authority`]); an HTTP/1.1 request must have a `Host`, and
/// never two; a `Host` beside an authority must name the same host and port
/// (case aside; a missing port is the scheme's default).
///
/// The host is left as the request's only `Host` header, where routing
/// ([`crate::route::request_host`]) and forwarding
/// ([`super::headers::prepare_request`]) read it, and returned; `None` when
/// an HTTP/1.0 or HTTP/2 request names none.
pub fn one_host(parts: &mut Parts) -> Result<Option<&HeaderValue>, Refusal> {
    if parts.uri.authority().is_some() {
        target_authority_as_host(parts)?;
        return Ok(parts.headers.get(HOST));
    }
    let host = only_host(&parts.headers)?;
    if host.is_none() && parts.version == Version::HTTP_11 {
        return Err(Refusal::NoHost);
    }
    Ok(host)
}

/// The `Host` header, if there is exactly one and it is valid.
fn only_host(headers: &HeaderMap) -> Result<Option<&HeaderValue>, Refusal> {
    let mut hosts = headers.get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(Refusal::ManyHosts);
    }
    match host {
        Some(h) if !valid_authority(h.as_bytes()) => Err(Refusal::InvalidHost),
        _ => Ok(host),
    }
}

/// A request with an authority in its target: the authority, valid, is its
/// host, and a `Host` beside it names the same; it becomes the one `Host`.
fn target_authority_as_host(parts: &mut Parts) -> Result<(), Refusal> {
    let Some(authority) = parts.uri.authority() else {
        return Ok(());
    };
    let target = authority.as_str();
    if !valid_authority(target.as_bytes()) {
        return Err(Refusal::InvalidAuthority);
    }
    match only_host(&parts.headers)? {
        Some(h) if h.as_bytes() == target.as_bytes() => return Ok(()),
        Some(h) => {
            let default_port = match parts.uri.scheme_str() {
                Some(s) if s.eq_ignore_ascii_case("http") => Some(80),
                Some(s) if s.eq_ignore_ascii_case("https") => Some(443),
                _ => None,
            };
            if !same_authority(h.as_bytes(), target.as_bytes(), default_port) {
                return Err(Refusal::HostMismatch);
            }
        }
        None if parts.version == Version::HTTP_11 => return Err(Refusal::NoHost),
        None => {}
    }
    let value = HeaderValue::from_str(target).map_err(|_| Refusal::InvalidAuthority)?;
    parts.headers.insert(HOST, value);
    Ok(())
}

/// RFC 3986 `host [ ":" port ]` without userinfo: a reg-name (unreserved,
/// percent-encoded and sub-delims, except `,`, which `X-Forwarded-Host`
/// readers split on), an IPv4 address (a reg-name too) or an IPv6 literal in
/// brackets; a port of at most 65535, or empty. Never empty.
pub fn valid_authority(authority: &[u8]) -> bool {
    let Some((host, port)) = split_port(authority) else {
        return false;
    };
    let host_ok = match host {
        [b'[', inner @ .., b']'] => {
            std::str::from_utf8(inner).is_ok_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
        }
        _ => valid_reg_name(host),
    };
    host_ok && port.is_none_or(|p| p.is_empty() || port_number(p).is_some())
}

/// `host` and `port` (the bytes after `:`, if there is one).
fn split_port(authority: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let end = match authority.first() {
        Some(b'[') => authority.iter().position(|b| *b == b']')? + 1,
        _ => authority
            .iter()
            .position(|b| *b == b':')
            .unwrap_or(authority.len()),
    };
    let (host, rest) = authority.split_at(end);
    match rest {
        [] => Some((host, None)),
        [b':', port @ ..] => Some((host, Some(port))),
        _ => None,
    }
}

fn port_number(p: &[u8]) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(p).ok()?.parse().ok()
}

/// RFC 3986 reg-name bytes other than `%`: unreserved and sub-delims, but no `,`.
const REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b';'
                    | b'='
            );
        i += 1;
    }
    table
};

fn valid_reg_name(name: &[u8]) -> bool {
    let mut rest = name;
    while let Some((&b, tail)) = rest.split_first() {
        rest = match tail {
            _ if REG_NAME[usize::from(b)] => tail,
            [h1, h2, after @ ..]
                if b == b'%' && h1.is_ascii_hexdigit() && h2.is_ascii_hexdigit() =>
            {
                after
            }
            _ => return false,
        };
    }
    !name.is_empty()
}

/// Whether two valid authorities name the same host and port: the host
/// compared without case, a missing (or empty) port read as `default_port`.
fn same_authority(a: &[u8], b: &[u8], default_port: Option<u16>) -> bool {
    let (Some((ha, pa)), Some((hb, pb))) = (split_port(a), split_port(b)) else {
        return false;
    };
    let port = |p: Option<&[u8]>| match p {
        Some(p) if !p.is_empty() => port_number(p),
        _ => default_port,
    };
    ha.eq_ignore_ascii_case(hb) && port(pa) == port(pb)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(version: Version, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut req = http::Request::get(uri).version(version);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(()).unwrap().into_parts().0
    }

    fn host(p: &mut Parts) -> Result<Option<String>, Refusal> {
        one_host(p).map(|h| h.map(|v| v.to_str().unwrap().to_string()))
    }

    #[test]
    fn authorities_are_validated_as_rfc_3986_hosts() {
        for ok in [
            "a",
            "a.example:8080",
            "a.example:",
            "[::1]",
            "[2001:db8::1]:443",
            "127.0.0.1:80",
            "%41b.example",
            "a_b-c~d.example",
            "a!$&'()*+;=b",
        ] {
            assert!(valid_authority(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            ":80",
            "a,b",
            "a, b",
            "user@a",
            "a/b",
            "a?b",
            "a#b",
            "a\\b",
            "a b",
            "a:80:80",
            "a:x",
            "a:65536",
            "a:000080",
            "[::1",
            "[::1]x",
            "[v1.x]",
            "[::1%25eth0]",
            "::1",
            "%4",
            "%zz",
            "a\"b",
        ] {
            assert!(!valid_authority(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn the_one_host_is_the_targets_authority_else_host() {
        let mut p = parts(Version::HTTP_11, "/x", &[("host", "a.example")]);
        assert_eq!(host(&mut p), Ok(Some("a.example".into())));
        let mut p = parts(
            Version::HTTP_11,
            "http://a.example/x",
            &[("host", "A.EXAMPLE:80")],
        );
        assert_eq!(host(&mut p), Ok(Some("a.example".into())));
        assert_eq!(p.headers.get_all(HOST).iter().count(), 1);
        let mut p = parts(Version::HTTP_2, "https://a.example:443/x", &[]);
        assert_eq!(host(&mut p), Ok(Some("a.example:443".into())));
        let mut p = parts(
            Version::HTTP_2,
            "https://a.example/",
            &[("host", "a.example:443")],
        );
        assert_eq!(host(&mut p), Ok(Some("a.example".into())));
        // No host at all: refused in HTTP/1.1 only.
        assert_eq!(host(&mut parts(Version::HTTP_10, "/", &[])), Ok(None));
        assert_eq!(host(&mut parts(Version::HTTP_2, "/", &[])), Ok(None));
        let refused = [
            (parts(Version::HTTP_11, "/", &[]), Refusal::NoHost),
            (
                parts(Version::HTTP_11, "http://a.example/", &[]),
                Refusal::NoHost,
            ),
            (
                parts(Version::HTTP_11, "/", &[("host", "a"), ("host", "a")]),
                Refusal::ManyHosts,
            ),
            (
                parts(Version::HTTP_11, "/", &[("host", "a, b")]),
                Refusal::InvalidHost,
            ),
            (
                parts(Version::HTTP_11, "http://a/", &[("host", "b")]),
                Refusal::HostMismatch,
            ),
            (
                parts(Version::HTTP_11, "http://a:8080/", &[("host", "a")]),
                Refusal::HostMismatch,
            ),
            (
                parts(Version::HTTP_2, "http://u@a/", &[]),
                Refusal::InvalidAuthority,
            ),
            (
                parts(Version::HTTP_2, "http://a/", &[("host", "b")]),
                Refusal::HostMismatch,
            ),
        ];
        for (mut p, want) in refused {
            assert_eq!(host(&mut p), Err(want), "{p:?}");
        }
    }

    #[test]
    fn fields_refuse_codings_and_edge_whitespace_and_drop_underscores() {
        let check = |version, headers: &[(&str, &str)], underscores| {
            let mut p = parts(version, "/", headers);
            fields(&mut p, underscores).map(|()| p.headers)
        };
        let te = |v| check(Version::HTTP_11, &[("transfer-encoding", v)], false);
        assert!(te("chunked").is_ok());
        assert!(te("CHUNKED").is_ok());
        assert!(te(" , chunked").is_ok(), "empty list elements are ignored");
        assert_eq!(te("gzip, chunked"), Err(Refusal::TransferCoding));
        assert_eq!(te("identity, chunked"), Err(Refusal::TransferCoding));
        assert_eq!(te("chunked;x=1"), Err(Refusal::TransferCoding));
        assert_eq!(te("chunked, chunked"), Err(Refusal::ChunkedTwice));
        let two = [
            ("transfer-encoding", "gzip"),
            ("transfer-encoding", "chunked"),
        ];
        assert_eq!(
            check(Version::HTTP_11, &two, false),
            Err(Refusal::TransferCoding)
        );
        for v in [" a", "a ", "\ta", "a\t"] {
            assert_eq!(
                check(Version::HTTP_2, &[("x", v)], false),
                Err(Refusal::FieldWhitespace),
                "{v:?}"
            );
        }
        assert!(check(Version::HTTP_2, &[("x", "a b")], false).is_ok());
        let named = [("x_a", "1"), ("x-b", "2"), ("transfer_encoding", "chunked")];
        let kept = check(Version::HTTP_11, &named, false).unwrap();
        assert_eq!(kept.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-b"]);
        assert_eq!(check(Version::HTTP_11, &named, true).unwrap().len(), 3);
    }
}
