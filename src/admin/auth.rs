//! Who may change the rollout: a bearer token compared in constant time
//! (`subtle`), and
//! without a configured token only callers of a loopback listener.
//!
//! Reading calls (`GET`) need no token; every mutating call goes through [`Auth::check`].

use http::HeaderMap;
use std::net::SocketAddr;
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
    /// 403: no token is configured and the listener is not loopback.
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

    /// Allows or refuses a mutating call.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(token) = &self.token else {
            return if self.loopback {
                Ok(())
            } else {
                Err(Refusal::Forbidden(
                    "no admin token is configured and the admin listener is not loopback: \
                     set the variable named by admin.token_env"
                        .into(),
                ))
            };
        };
        let presented = headers
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {t}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn token_is_required_when_configured() {
        let a = Auth::new(Some("s3cret".into()), "127.0.0.1:9090".parse().unwrap());
        assert!(a.check(&bearer("s3cret")).is_ok());
        assert!(matches!(
            a.check(&bearer("s3cre")),
            Err(Refusal::Unauthorized(_))
        ));
        assert!(matches!(
            a.check(&bearer("s3cret!")),
            Err(Refusal::Unauthorized(_))
        ));
        assert!(matches!(
            a.check(&HeaderMap::new()),
            Err(Refusal::Unauthorized(_))
        ));
    }

    #[test]
    fn without_a_token_only_loopback_may_mutate() {
        let local = Auth::new(None, "127.0.0.1:9090".parse().unwrap());
        assert!(local.check(&HeaderMap::new()).is_ok());
        let open = Auth::new(Some(String::new()), "0.0.0.0:9090".parse().unwrap());
        assert!(matches!(
            open.check(&bearer("x")),
            Err(Refusal::Forbidden(_))
        ));
    }
}
