//! Staged autonomy (SPEC §14): the weight decides *which* users are in a
//! segment's canary, the stage *what the candidate may do* for them.
//!
//! [`stage`] is the ordered stage itself; [`evidence`] counts what each stage
//! produces (agreement, approvals, reviews, reversals, ratings) and judges it
//! with the guard's statistics; [`suggest`] builds the `recommend`
//! suggestion; [`outbox`] posts approved answers and reviews.

pub mod evidence;
pub mod outbox;
pub mod people;
pub mod stage;

pub use stage::Stage;
