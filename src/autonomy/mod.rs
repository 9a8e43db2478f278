//! Staged autonomy (docs/src/concepts/stages.md): the weight decides *which* users are in a
//! segment's canary, the stage *what the candidate may do* for them.
//!
//! The ordered stage itself is a value of the configuration
//! ([`crate::config::Stage`]); [`evidence`] counts what each stage produces
//! (agreement, approvals, reviews, reversals, ratings) and judges it with the
//! guard's statistics ([`crate::judge`]); [`outbox`] posts approved answers
//! and reviews. People's decisions and feedback arrive through
//! `admin::people`; the request path's side of each stage is `proxy::stage`.

pub mod evidence;
pub mod outbox;

pub use crate::config::Stage;
