//! What the rollout needs of the fleet (docs/src/concepts/fleet.md), as a port the fleet
//! implements: the rollout never imports the fleet, the fleet (above it)
//! implements [`FleetLink`] and joins with [`super::Rollout::join_fleet`].
//!
//! Under `[fleet]` a raise is the fleet's next version (or a 409), a
//! lowering is applied here at once and pushed when connected, and settled
//! exchanges add to the pooled evidence.

use super::Change;
use super::guard::Sample;
use std::future::Future;
use std::pin::Pin;

/// Why the fleet refused or could not take a raise.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// Another replica changed the route first: look again and retry (409).
    #[error("{0}")]
    Conflict(String),
    /// PostgreSQL is unreachable or failed (503): a raise needs the fleet.
    #[error("{0}")]
    Unavailable(String),
}

/// A boxed future, for a port method that talks to PostgreSQL.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// This replica's link to the fleet, as the rollout sees it.
pub trait FleetLink: Send + Sync {
    /// This replica's name (the `replica` column of its changes).
    fn replica(&self) -> &str;
    /// Whether PostgreSQL is reachable now.
    fn connected(&self) -> bool;
    /// The `/readyz` line.
    fn readiness(&self) -> String;
    /// Wakes the session: a local change waits to be pushed.
    fn kick(&self);
    /// Notes that fleet version `version` of `route` is in effect here.
    fn set_applied(&self, route: &str, version: i64);
    /// Adds a settled exchange to the pooled evidence (never blocks on IO).
    fn add_evidence(&self, route: &str, segment: &str, sample: &Sample);
    /// Appends a raise as the next version of its route, based on the
    /// version this replica applied last: its version, or a refusal.
    fn insert_raise<'a>(&'a self, change: &'a Change) -> Pending<'a, Result<i64, FleetError>>;
}
