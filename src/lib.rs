//! Understudy: a shadow-mode traffic-mirroring reverse proxy.
//!
//! The life of an exchange (the README's "How an exchange flows" tells the
//! same in more words):
//!
//! 1. `proxy::server` accepts a connection (optionally TLS) and hands each
//!    request to `proxy::handle`, which admits it from one snapshot of the
//!    runtime: the path, the header count, the route (`route`, in file order,
//!    or 404) and the body read under `store.max_body_bytes` (larger bodies
//!    stream to the incumbent and are not mirrored). One `proxy::answer::Ctx`
//!    carries the proxy, the route and the cap down the path.
//! 2. `exchange` reads the segment and the sticky key (`segment`); `rollout`
//!    decides who serves from one read of the live state, and `proxy::stage`
//!    what the segment's stage lets the candidate do for a canary user: serve,
//!    serve and be reviewed, wait for approval, or suggest (`proxy::suggest`).
//! 3. `proxy::mirror` plans the copy for the other side, bounded by
//!    `max_in_flight` and `timeout` (and, for AI candidates, by `spend`:
//!    sample, daily budget, focus); a skipped copy is counted, never queued.
//! 4. `proxy::answer` forwards to the serving side (the candidate falls back
//!    to the incumbent once), and the answer streams back through a tee
//!    (`proxy::body`) that keeps a capped copy; it never waits on the copy,
//!    except at `recommend`, where the client waits at most `suggest_timeout`.
//! 5. `proxy::settle`, on its own task: both answers in, `compare` gives a
//!    verdict (on `llm` routes `reading` decodes both answers and
//!    `proxy::cascade` runs the text stages; a pending judge is asked),
//!    `store::redact` scrubs the row and `store` queues it for the SQLite
//!    writer thread (with a pending approval at `approve`; a review is posted
//!    at `notify`, `proxy::stage`).
//! 6. The verdict reaches the segment's guard and stage tracker, which judge
//!    it with `judge`; what they decide, what people decide (`admin`, through
//!    `admin::people` for feedback and approvals) and what the fleet decides
//!    (`fleet`, through the `rollout::FleetLink` port) all change the rollout
//!    through one path (`rollout::state`): typed by intent, gated when it
//!    raises, applied by one rule, recorded in `rollout_events`.

pub mod admin;
pub mod app;
pub mod autonomy;
pub mod budget;
pub mod cli;
pub mod coding;
pub mod compare;
pub mod config;
pub mod demo;
pub mod exchange;
pub mod export;
pub mod fleet;
pub mod html;
pub mod judge;
pub mod limit;
pub mod loopback;
pub mod metrics;
pub mod notify;
pub mod observation;
pub mod pointer;
pub mod proxy;
pub mod query;
pub mod reading;
pub mod replay;
pub mod report;
pub mod rollout;
pub mod route;
pub mod runtime;
pub mod segment;
pub mod shard;
pub mod shutdown;
pub mod slices;
pub mod spend;
pub mod stats;
pub mod store;
pub mod tls;
pub mod upstream;
