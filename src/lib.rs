//! Understudy: a shadow-mode traffic-mirroring reverse proxy.
//!
//! How an exchange flows through these modules: `docs/src/design/architecture.md`.

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
