//! Who may change the rollout: a bearer token compared in constant time
//! (`subtle`), and without a configured token only a caller on a loopback
//! listener, from a loopback peer, naming a loopback `Host` (docs/src/reference/admin-api.md, docs/src/reference/limits.md).
//!
//! Reading calls (`GET`) need no token; every mutating call goes through
//! [`Auth::check`]. The `Host` rule stops DNS rebinding: a web page whose
//! name was re-pointed at 127.0.0.1 still sends its own name as `Host`.

use http::request::Parts;
use std::net::{IpAddr, SocketAddr};
use subtle::ConstantTimeEq;

/// The admin listener's access rule, fixed at start.
pub struct Auth {
    token: Option<Vec<u8>>,
    loopback: bool,
}

/// Why a mutating call was refused, and the status it gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 401: a token is configured and the call did not carry it.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: no token is configured and the listener, the peer or the
    /// `Host` is not loopback.
    #[error("{0}")]
    Forbidden(String),
}

impl Auth {
    /// `token` comes from the environment variable named by `admin.token_env`
    /// (read once at start); an empty value counts as none.
    pub fn new(token: Option<String>, listener: SocketAddr) -> Auth {
        Auth {
            token: token.filter(|t| !t.is_empty()).map(String::into_bytes),
            loopback: listener.ip().is_loopback(),
        }
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Allows or refuses a mutating call from `peer`.
    pub fn check(&self, peer: SocketAddr, parts: &Parts) -> Result<(), Refusal> {
        let Some(token) = &self.token else {
            return self.check_loopback(peer, parts);
        };
        let presented = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match presented {
            None => Err(Refusal::Unauthorized(
                "missing `Authorization: Bearer <token>`".into(),
            )),
            Some(p) if bool::from(p.as_bytes().ct_eq(token)) => Ok(()),
            Some(_) => Err(Refusal::Unauthorized("wrong admin token".into())),
        }
    }

    fn check_loopback(&self, peer: SocketAddr, parts: &Parts) -> Result<(), Refusal> {
        const HINT: &str = "set the variable named by admin.token_env to allow it";
        if !self.loopback {
            return Err(Refusal::Forbidden(format!(
                "no admin token is configured and the admin listener is not loopback: {HINT}"
            )));
        }
        if !peer.ip().to_canonical().is_loopback() {
            return Err(Refusal::Forbidden(format!(
                "no admin token is configured and the caller {} is not loopback: {HINT}",
                peer.ip()
            )));
        }
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok());
        // An absolute-form target (`POST http://host/...`) names a host too:
        // both must be loopback.
        let named = [host, parts.uri.host()];
        if host.is_none() || !named.into_iter().flatten().all(is_loopback_host) {
            return Err(Refusal::Forbidden(format!(
                "no admin token is configured and the Host {:?} is not loopback \
                 (localhost, 127.0.0.0/8 or [::1]): {HINT}",
                host.unwrap_or("")
            )));
        }
        Ok(())
    }
}

/// `localhost`, a 127.0.0.0/8 address or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = crate::route::strip_port(host);
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    name.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: &str = "127.0.0.1:50000";

    fn request(headers: &[(&str, &str)]) -> Parts {
        request_to("/api/v1/reload", headers)
    }

    fn request_to(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut req = http::Request::post(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(()).unwrap().into_parts().0
    }

    fn bearer(t: &str) -> Parts {
        let auth = format!("Bearer {t}");
        request(&[("authorization", &auth), ("host", "example.com")])
    }

    #[test]
    fn token_is_required_when_configured() {
        let a = Auth::new(Some("s3cret".into()), "127.0.0.1:9090".parse().unwrap());
        let remote = "203.0.113.9:4000".parse().unwrap();
        assert!(a.check(remote, &bearer("s3cret")).is_ok());
        for wrong in [bearer("s3cre"), bearer("s3cret!"), request(&[])] {
            assert!(matches!(
                a.check(remote, &wrong),
                Err(Refusal::Unauthorized(_))
            ));
        }
    }

    #[test]
    fn without_a_token_only_loopback_may_mutate() {
        let local = Auth::new(None, "127.0.0.1:9090".parse().unwrap());
        let peer = LOCAL.parse().unwrap();
        for host in [
            "127.0.0.1:9090",
            "localhost",
            "LOCALHOST:1",
            "127.3.2.1",
            "[::1]:9090",
        ] {
            assert!(
                local.check(peer, &request(&[("host", host)])).is_ok(),
                "{host}"
            );
        }
        let v6 = "[::1]:5000".parse().unwrap();
        assert!(local.check(v6, &request(&[("host", "[::1]")])).is_ok());
        let open = Auth::new(Some(String::new()), "0.0.0.0:9090".parse().unwrap());
        assert!(matches!(
            open.check(peer, &request(&[("host", "127.0.0.1")])),
            Err(Refusal::Forbidden(_))
        ));
    }

    #[test]
    fn without_a_token_a_remote_peer_or_a_foreign_host_is_refused() {
        let local = Auth::new(None, "127.0.0.1:9090".parse().unwrap());
        let remote = "192.0.2.7:5000".parse().unwrap();
        assert!(matches!(
            local.check(remote, &request(&[("host", "127.0.0.1")])),
            Err(Refusal::Forbidden(_))
        ));
        let peer = LOCAL.parse().unwrap();
        // DNS rebinding: the browser sends the attacker's name as Host.
        for host in [
            "evil.example:9090",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "10.0.0.1",
            "[::2]",
            "",
        ] {
            assert!(
                matches!(
                    local.check(peer, &request(&[("host", host)])),
                    Err(Refusal::Forbidden(_))
                ),
                "{host:?}"
            );
        }
        assert!(matches!(
            local.check(peer, &request(&[])),
            Err(Refusal::Forbidden(_))
        ));
        let absolute = request_to(
            "http://evil.example/api/v1/reload",
            &[("host", "127.0.0.1")],
        );
        assert!(matches!(
            local.check(peer, &absolute),
            Err(Refusal::Forbidden(_))
        ));
    }
}
