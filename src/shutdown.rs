//! The stop signal: SIGTERM or SIGINT (Ctrl-C), whichever comes first.
//!
//! The handlers are installed by [`Stop::install`], before the listeners
//! open: a SIGTERM that arrives while the proxy is starting is a stop, not the
//! default action (an abrupt exit with rows in memory).

/// The installed handlers, waited on with [`Stop::wait`].
pub struct Stop {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Stop {
    /// Installs the handlers now (inside the runtime).
    pub fn install() -> Stop {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signals = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(term), Ok(int)) => Some((term, int)),
                _ => None,
            };
            Stop { signals }
        }
        #[cfg(not(unix))]
        Stop {}
    }

    /// Resolves when the process is asked to stop.
    pub async fn wait(self) {
        #[cfg(unix)]
        if let Some((mut term, mut int)) = self.signals {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: stopping"),
                _ = int.recv() => tracing::info!("SIGINT: stopping"),
            }
            return;
        }
        let _ctrl_c = tokio::signal::ctrl_c().await;
    }
}
