//! `upstream::Error`: how a call to an upstream failed, named by its side.

/// A failed upstream call. `target` names the side (`incumbent`, `candidate`, `judge`).
#[derive(Debug, Clone, Copy, thiserror::Error)]
pub enum Error {
    #[error("upstream {target} refused or reset the connection")]
    Connect {
        target: &'static str,
        /// No connection could be made (refused, unreachable, TLS handshake);
        /// false when an established connection broke.
        at_connect: bool,
    },
    #[error("upstream {target} did not answer in time")]
    Timeout {
        target: &'static str,
        /// The connect timeout fired; false for the response timeout.
        at_connect: bool,
    },
    #[error("upstream {target} sent an invalid response")]
    Protocol { target: &'static str },
}

impl Error {
    /// No connection to the upstream could be made (refused, unreachable,
    /// connect timeout): the failures the mirror backs off from.
    pub fn failed_to_connect(&self) -> bool {
        matches!(
            self,
            Error::Connect {
                at_connect: true,
                ..
            } | Error::Timeout {
                at_connect: true,
                ..
            }
        )
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }
}
