//! The session: one connection to PostgreSQL per replica that migrates,
//! seeds, pushes local events and evidence, follows the fleet's events
//! (`LISTEN understudy_rollout` plus a 1 s poll), keeps the heartbeat and,
//! on the replica holding the evaluator lock, runs the fleet's guards.
//!
//! When the connection fails the replica is disconnected: it serves with its
//! last weights and logs to SQLite; the session reconnects every second and,
//! once back, pushes what it did alone before it follows the fleet again.

use super::{Fleet, pg, schema};
use crate::proxy::Proxy;
use crate::rollout::guard::{Sample, SegmentGuard};
use crate::rollout::{Actor, Change, Depth, Evidence, Intent, Reset, Scope, Target};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio_postgres::AsyncMessage;

/// The poll beside `LISTEN`, the heartbeat, evidence shipping and the
/// evaluator's pace. Evidence is counted in 200 ms slices; a closed slice is
/// shipped and judged within a tick or two of its end, so pooled evidence
/// reaches the evaluator about 0.4 s after it happened.
const TICK: Duration = Duration::from_millis(200);
/// How often a disconnected replica tries again.
const RETRY: Duration = Duration::from_secs(1);
/// The longest connecting and catching up may take before the attempt is
/// given up and started over.
const WORK_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest one step of a connected session may take: a replica cut off
/// mid-session knows it (and stops counting itself the evaluator) within this.
const STEP_TIMEOUT: Duration = Duration::from_secs(4);
/// The last evidence at stop gets this long.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);
/// Evidence older than this is pruned by the evaluator.
const EVIDENCE_KEPT_S: i64 = 3600;

/// Runs the session until `stop` says so, reconnecting after each failure.
pub async fn run(fleet: Fleet, proxy: Arc<Proxy>, mut stop: watch::Receiver<bool>) {
    let started_ms = crate::store::now_ms();
    loop {
        let ended = session(&fleet, &proxy, &mut stop, started_ms).await;
        fleet.set_connected(false);
        let lost = || fleet.inner.evidence.abandon();
        match ended {
            Ok(()) => return fleet.inner.metrics.evidence_dropped.inc_by(lost()),
            Err(e) => {
                tracing::warn!(error = %e, since = %fleet.down_since(), "Fleet disconnected; serving with the last weights");
            }
        }
        tokio::select! {
            () = super::stopped(&mut stop) => return fleet.inner.metrics.evidence_dropped.inc_by(lost()),
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}

async fn session(
    fleet: &Fleet,
    proxy: &Arc<Proxy>,
    stop: &mut watch::Receiver<bool>,
    started_ms: i64,
) -> Result<(), super::Error> {
    // Connecting and catching up are bounded (a server that accepts and never
    // answers must not hold the session), and a stop cuts them short.
    let setup = async {
        let (mut client, mut connection) = fleet.inner.pg.connect(fleet.inner.tls.clone()).await?;
        let (notes_tx, notes) = mpsc::channel::<()>(16);
        let driver = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(_))) => {
                        let _full_is_fine = notes_tx.try_send(());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e),
                    None => return Ok(()),
                }
            }
        });
        let abort = AbortOnDrop(driver.abort_handle());
        // The server drops this session (and with it the evaluator lock)
        // within about 4 s of the replica vanishing from the network, not
        // after the system's two-hour keepalive default.
        client
            .batch_execute(
                "SET tcp_keepalives_idle = 2; SET tcp_keepalives_interval = 1; \
                 SET tcp_keepalives_count = 2",
            )
            .await?;
        schema::migrate(&client).await?;
        if !schema::claim_replica(&client, fleet.replica()).await? {
            return Err(super::Error::NameInUse(fleet.replica().to_string()));
        }
        client.batch_execute("LISTEN understudy_rollout").await?;
        seed(fleet, proxy, &mut client).await?;
        // What this replica did alone goes first, then it follows the fleet.
        push_local(fleet, proxy, &client).await?;
        push_evidence(fleet, &mut client).await?;
        catch_up(fleet, proxy, &client, None).await?;
        Ok::<_, super::Error>((client, driver, abort, notes))
    };
    let (mut client, mut driver, _abort, mut notes) = tokio::select! {
        ready = tokio::time::timeout(WORK_TIMEOUT, setup) => {
            ready.map_err(|_| super::Error::Timeout(WORK_TIMEOUT))??
        }
        () = super::stopped(stop) => return Ok(()),
    };
    fleet.set_connected(true);
    tracing::info!(replica = %fleet.replica(), "Fleet connected");
    let mut evaluator: Option<Evaluator> = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let work = tokio::select! {
            () = super::stopped(stop) => Work::Stop,
            ended = &mut driver => {
                return match ended {
                    Ok(Err(e)) => Err(e.into()),
                    _ => Err(super::Error::Build("the PostgreSQL connection closed".into())),
                };
            }
            Some(()) = notes.recv() => Work::Follow,
            () = fleet.inner.kick.notified() => Work::Push,
            _ = tick.tick() => Work::Tick,
        };
        // Each step is bounded: a server that stops answering mid-session
        // ends the session (and the replica reconnects), never hangs it.
        let step = async {
            match work {
                Work::Stop => {
                    // Last evidence out; the lock goes with the session.
                    push_evidence(fleet, &mut client).await?;
                    pg::heartbeat(&client, fleet.replica(), started_ms, false).await
                }
                Work::Follow => catch_up(fleet, proxy, &client, evaluator.as_mut()).await,
                Work::Push => {
                    push_local(fleet, proxy, &client).await?;
                    catch_up(fleet, proxy, &client, evaluator.as_mut()).await
                }
                Work::Tick => {
                    push_local(fleet, proxy, &client).await?;
                    catch_up(fleet, proxy, &client, evaluator.as_mut()).await?;
                    push_evidence(fleet, &mut client).await?;
                    if evaluator.is_none() {
                        let got: bool = client
                            .query_one(
                                "SELECT pg_try_advisory_lock($1)",
                                &[&schema::EVALUATOR_LOCK],
                            )
                            .await?
                            .get(0);
                        if got {
                            tracing::info!(replica = %fleet.replica(), "This replica is the fleet's evaluator");
                            fleet.inner.metrics.evaluator.set(1);
                            evaluator = Some(Evaluator::default());
                        }
                    }
                    if let Some(ev) = evaluator.as_mut() {
                        ev.step(fleet, proxy, &client).await?;
                    }
                    pg::heartbeat(&client, fleet.replica(), started_ms, evaluator.is_some()).await
                }
            }
        };
        let limit = if matches!(work, Work::Stop) {
            STOP_TIMEOUT
        } else {
            STEP_TIMEOUT
        };
        let done = tokio::time::timeout(limit, step).await;
        match (work, done) {
            (Work::Stop, _) => return Ok(()),
            (_, Ok(result)) => result?,
            (_, Err(_)) => return Err(super::Error::Timeout(limit)),
        }
    }
}

/// What the session does next.
#[derive(Clone, Copy)]
enum Work {
    Stop,
    Follow,
    Push,
    Tick,
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Seeds each configured route the fleet does not know with the file's weights.
async fn seed(
    fleet: &Fleet,
    proxy: &Arc<Proxy>,
    client: &mut tokio_postgres::Client,
) -> Result<(), super::Error> {
    let config = proxy.runtime.load().config.clone();
    for route in &config.routes {
        let changes = crate::rollout::state::file_changes(route);
        if pg::seed(client, &route.name, &changes, fleet.replica()).await? {
            tracing::info!(route = %route.name, "Seeded the fleet with the file's weights");
        }
    }
    Ok(())
}

/// Pushes local events the fleet does not have (lowerings made here, alone
/// or while disconnected), each re-based on the fleet's latest version.
async fn push_local(
    fleet: &Fleet,
    proxy: &Arc<Proxy>,
    client: &tokio_postgres::Client,
) -> Result<(), super::Error> {
    let store = proxy.store.clone();
    let local = tokio::task::spawn_blocking(move || store.unpushed())
        .await
        .map_err(|e| super::Error::Build(e.to_string()))??;
    for ev in local {
        let (local, ts_ms) = (ev.version, ev.ts_ms);
        let change = Change::from(ev);
        let v = pg::insert_rebased(client, &change, fleet.replica(), ts_ms).await?;
        proxy.store.mark_pushed(local, v).await?;
        tracing::info!(route = %change.route, segment = %change.segment, local, fleet = v, "Local change pushed to the fleet");
    }
    Ok(())
}

/// Applies the fleet's events newer than what this replica has; tells the
/// evaluator (when this replica is it) which segments changed.
async fn catch_up(
    fleet: &Fleet,
    proxy: &Arc<Proxy>,
    client: &tokio_postgres::Client,
    evaluator: Option<&mut Evaluator>,
) -> Result<(), super::Error> {
    let (routes, versions) = fleet.applied_all();
    let events = pg::since(client, &routes, &versions).await?;
    if events.is_empty() {
        return Ok(());
    }
    if let Some(ev) = evaluator {
        for e in &events {
            ev.changed(e);
        }
    }
    // `set_applied` keeps each route's newest.
    let newest: Vec<(String, i64)> = events
        .iter()
        .filter_map(|e| Some((e.route.clone(), e.fleet_version?)))
        .collect();
    let applied = proxy
        .rollout
        .apply_fleet(events, &proxy.store, &proxy.metrics)
        .await?;
    fleet.inner.metrics.events_applied.inc_by(applied as u64);
    for (route, v) in newest {
        fleet.set_applied(&route, v);
    }
    Ok(())
}

async fn push_evidence(
    fleet: &Fleet,
    client: &mut tokio_postgres::Client,
) -> Result<(), super::Error> {
    let (lease, dropped) = fleet.inner.evidence.lease();
    fleet.inner.metrics.evidence_dropped.inc_by(dropped);
    if !lease.rows().is_empty() {
        // Dropped uncommitted (an error, or the step's timeout), the rows go back.
        super::evidence::sql::insert(client, fleet.replica(), lease.rows()).await?;
    }
    lease.committed();
    Ok(())
}

/// The fleet's guards, on the replica that holds the evaluator lock.
#[derive(Default)]
struct Evaluator {
    /// Per replica, the last evidence row read.
    cursor: super::evidence::sql::Cursor,
    guards: HashMap<String, HashMap<String, SegmentGuard>>,
    /// Per route and segment, the second of the last change: older evidence
    /// (a partitioned replica's, arriving late) belongs to the old weight.
    reset_at: HashMap<(String, String), i64>,
    pruned_at: Option<Instant>,
}

impl Evaluator {
    /// A change made by anyone: the evidence it touches starts over, by the
    /// one rule ([`Reset::of`]) the local guards follow too. After a full
    /// reset ([`Depth::Evidence`]) pooled rows of the seconds up to and
    /// including it belong to the old state and are passed over: rows are
    /// stamped in whole seconds of the replica's clock, so the second of the
    /// reset itself is dropped too (some evidence after it is lost, none
    /// from before it leaks; replicas' clocks must agree within a second).
    fn changed(&mut self, change: &Change) {
        let reset = Reset::of(change);
        let now = Instant::now();
        for (route, per) in self.guards.iter_mut() {
            for (_, g) in per.iter_mut().filter(|(s, _)| reset.touches(route, s)) {
                g.reset_at(now, reset.depth);
            }
        }
        if reset.depth != Depth::Evidence {
            return;
        }
        let second = super::evidence::unix_seconds();
        let touched: Vec<(String, String)> = (self.guards.iter())
            .flat_map(|(r, per)| per.keys().map(move |s| (r.clone(), s.clone())))
            .filter(|(r, s)| reset.touches(r, s))
            .collect();
        self.reset_at
            .extend(touched.into_iter().map(|k| (k, second)));
        if let Scope::Segment(route, seg) = reset.scope {
            self.reset_at.insert((route, seg), second);
        }
    }

    /// Reads the new evidence, runs each segment's guard over it, and writes
    /// what they decide as fleet events.
    async fn step(
        &mut self,
        fleet: &Fleet,
        proxy: &Arc<Proxy>,
        client: &tokio_postgres::Client,
    ) -> Result<(), super::Error> {
        let now = Instant::now();
        let rows = self.cursor.read(client, 600).await?;
        let mut batches: HashMap<(String, String), Vec<Sample>> = HashMap::new();
        for row in rows {
            let key = (row.route.clone(), row.segment.clone());
            if self.reset_at.get(&key).is_some_and(|s| row.second <= *s) {
                continue;
            }
            let at = super::evidence::instant_of(row.second, now);
            batches.entry(key).or_default().extend(row.samples(at));
        }
        let runtime = proxy.runtime.load();
        for ((route_name, segment), samples) in batches {
            let Some(route) = runtime.config.routes.iter().find(|r| r.name == route_name) else {
                continue;
            };
            let weight = proxy
                .rollout
                .snapshot_now()
                .get(&route_name)
                .map_or(0.0, |s| s.weight(&segment));
            let guard = self
                .guards
                .entry(route_name.clone())
                .or_default()
                .entry(segment.clone())
                .or_default();
            let Some(action) = guard.observe_all(&route.guard, samples, now, weight) else {
                continue;
            };
            let reason = format!("fleet {}", action.reason);
            let Some(written) = self
                .write(
                    fleet, proxy, client, route, &segment, weight, &action, reason,
                )
                .await?
            else {
                continue;
            };
            proxy.rollout.announce_fleet(&written);
            self.changed(&written);
        }
        if self
            .pruned_at
            .is_none_or(|t| t.elapsed() > Duration::from_secs(60))
        {
            pg::prune_evidence(client, super::evidence::unix_seconds() - EVIDENCE_KEPT_S).await?;
            self.pruned_at = Some(now);
        }
        catch_up(fleet, proxy, client, Some(self)).await
    }

    /// Writes a fleet guard's decision as the fleet's next event: a breach
    /// as a lowering ("at most", re-based: never refused, never a raise), a
    /// promotion as a raise through the same gates as any other (the pooled
    /// evidence is its evidence gate; the route's external gates follow),
    /// compare-and-set on the version this replica applied.
    #[allow(clippy::too_many_arguments)]
    async fn write(
        &self,
        fleet: &Fleet,
        proxy: &Arc<Proxy>,
        client: &tokio_postgres::Client,
        route: &crate::config::Route,
        segment: &str,
        weight: f64,
        action: &crate::rollout::guard::Action,
        reason: String,
    ) -> Result<Option<Change>, super::Error> {
        let mut change = Change {
            from: Some(weight),
            to: Some(action.to),
            replica: Some(fleet.replica().to_string()),
            ..Change::new(&route.name, segment, Actor::Guard, reason)
        };
        if let Some(trip) = action.breach {
            proxy.metrics.record_guard_trip(&route.name, segment, trip);
            tracing::warn!(route = %route.name, segment, reason = %action.reason, "Fleet guard breach");
            change.intent = Intent::Lower;
            let v = pg::insert_rebased(client, &change, fleet.replica(), crate::store::now_ms())
                .await?;
            change.fleet_version = Some(v);
            return Ok(Some(change));
        }
        change.intent = Intent::Raise;
        let refusal = |why: String| Change {
            reason: why,
            ..change.clone()
        };
        let target = Target::Weight(action.to);
        let admitted = proxy
            .rollout
            .admit(
                route,
                segment,
                target,
                Actor::Guard,
                false,
                Evidence::Pooled,
                refusal,
            )
            .await;
        change.gates = match admitted {
            Ok((_, gates)) => gates,
            Err(e) => {
                tracing::info!(route = %route.name, segment, error = %e, "Fleet promotion held by a gate");
                return Ok(None);
            }
        };
        let base = fleet.applied(&route.name) + 1;
        Ok(pg::insert_at(client, &change, fleet.replica(), base)
            .await?
            .map(|v| Change {
                fleet_version: Some(v),
                ..change
            }))
    }
}
