//! Understudy: a shadow-mode traffic-mirroring reverse proxy.
//!
//! The life of an exchange:
//!
//! 1. `proxy::server` accepts a connection (optionally TLS) and hands each
//!    request to `proxy::handle`, which takes one snapshot of the runtime config.
//! 2. `route` matches the request to a route in file order, or answers 404.
//! 3. `segment` reads the segment and sticky key; `rollout` decides who serves,
//!    and for a canary user the segment's stage (`autonomy`) what the
//!    candidate may do: suggest (`proxy::suggest`), wait for approval, serve
//!    and be reviewed, or serve alone.
//! 4. `proxy::body` buffers the request body up to `store.max_body_bytes`
//!    (larger bodies stream to the incumbent and are not mirrored).
//! 5. `mirror` sends a copy to the other side on a spawned task, bounded by
//!    `max_in_flight` and `timeout` (and, for AI candidates, by `spend`:
//!    sample, daily budget, focus); it never delays the client, except at
//!    `recommend`, where the client waits for it at most `suggest_timeout`.
//! 6. `proxy::forward` calls the serving upstream; failures map to 502/504.
//! 7. The response streams back through a tee that keeps a capped copy (and,
//!    on `llm` routes, notes when each frame arrived).
//! 8. When both sides are in, `compare` gives a verdict (on `llm` routes
//!    `reading` decodes both answers, with time to first token, tokens and
//!    cost, and `proxy::cascade` runs the text stages), `store::redact`
//!    scrubs the row and `store` queues it for the SQLite writer thread (with a
//!    pending approval at `approve`; a review is posted at `notify`). The
//!    guard and the stage's evidence see the verdict; people's feedback and
//!    decisions reach them through `autonomy::people`.

pub mod admin;
pub mod app;
pub mod autonomy;
pub mod cli;
pub mod coding;
pub mod compare;
pub mod config;
pub mod demo;
pub mod exchange;
pub mod export;
pub mod fleet;
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
