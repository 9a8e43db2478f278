//! One integration-test binary (one link on a 2-core CI): real servers on loopback,
//! real SQLite files.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod support;

mod admin;
mod admin_hardening;
mod capture;
mod check;
mod conformance;
mod evidence;
mod faults;
mod fleet;
mod fleet_model;
mod gates;
mod hostile;
mod layers;
mod limits;
mod llm;
mod mirror;
mod newcomer;
mod notify;
mod onepath;
mod openapi;
mod ops;
mod paths;
mod percore;
mod proxy;
mod replay;
mod report;
mod rollout;
mod shutdown;
mod slices;
mod stage;
mod store;
mod trust;
