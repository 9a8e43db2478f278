//! Rollbacks never wait on the disk (docs/src/reference/limits.md): a change that lowers exposure
//! (a weight lowered, the mirror switched off) is applied first and recorded
//! after, by one task that retries each ledger write until it lands, in the
//! order the changes were made. Until it has landed, raises are refused, so
//! the ledger never records a raise before the rollback that preceded it.

use super::Change;
use crate::store::{self, Store, events};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long a rollback's caller waits to learn the version its change got;
/// the change is in effect either way.
const WAIT: Duration = Duration::from_millis(500);
/// Rollbacks waiting to be recorded; more than this many while the store is
/// down cannot happen in practice (each is a person's or a guard's action),
/// and one beyond it is still applied, only logged as unrecorded.
const QUEUE: usize = 1024;
/// Retry back-off, first and longest.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);

type Job = (Change, oneshot::Sender<Change>);

/// The handle a rollout keeps: where rollbacks go to be recorded.
#[derive(Debug)]
pub struct Recorder {
    tx: mpsc::Sender<Job>,
    unrecorded: Arc<AtomicUsize>,
}

impl Recorder {
    /// Starts the recording task on the current runtime.
    pub fn start(store: Store) -> Recorder {
        let (tx, rx) = mpsc::channel(QUEUE);
        let unrecorded = Arc::new(AtomicUsize::new(0));
        tokio::spawn(run(store, rx, unrecorded.clone()));
        Recorder { tx, unrecorded }
    }

    /// Changes applied but not yet in the ledger.
    pub fn unrecorded(&self) -> usize {
        self.unrecorded.load(Ordering::Acquire)
    }

    /// Queues an applied change for the ledger and waits a little for its
    /// version; the change comes back without one if it has not landed yet.
    pub async fn record(&self, change: Change) -> Change {
        let (reply, landed) = oneshot::channel();
        self.unrecorded.fetch_add(1, Ordering::AcqRel);
        if let Err(e) = self.tx.try_send((change.clone(), reply)) {
            self.unrecorded.fetch_sub(1, Ordering::AcqRel);
            tracing::error!(error = %e, route = %change.route, segment = %change.segment,
                "Rollback applied but its ledger queue is full; it is not recorded");
            return change;
        }
        match tokio::time::timeout(WAIT, landed).await {
            Ok(Ok(recorded)) => recorded,
            _ => change,
        }
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Job>, unrecorded: Arc<AtomicUsize>) {
    while let Some((change, reply)) = rx.recv().await {
        let mut wait = RETRY_FIRST;
        let recorded = loop {
            match append(&store, change.clone()).await {
                Ok(c) => break c,
                Err(store::Error::Closed { .. }) => return, // shutting down
                Err(e) => {
                    tracing::warn!(error = %e, route = %change.route, segment = %change.segment,
                        retry_in = ?wait, "Rollback is in effect; its ledger write failed and is retried");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RETRY_MAX);
                }
            }
        };
        unrecorded.fetch_sub(1, Ordering::AcqRel);
        tracing::info!(route = %recorded.route, segment = %recorded.segment, version = recorded.version, "Rollback recorded");
        // The caller may have stopped waiting.
        reply.send(recorded).ok();
    }
}

/// Appends `change` to `rollout_events` through the writer; the change with its version.
pub async fn append(store: &Store, mut change: Change) -> Result<Change, store::Error> {
    change.version = Some(store.append_event(event(&change)).await?);
    Ok(change)
}

/// Appends `changes` in one transaction (all or none); each with its version.
pub async fn append_all(
    store: &Store,
    mut changes: Vec<Change>,
) -> Result<Vec<Change>, store::Error> {
    let versions = store
        .append_events(changes.iter().map(event).collect())
        .await?;
    for (change, version) in changes.iter_mut().zip(versions) {
        change.version = Some(version);
    }
    Ok(changes)
}

fn event(change: &Change) -> events::NewEvent {
    change.new_event(store::now_ms())
}
