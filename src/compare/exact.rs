//! Exact mode: status and body bytes equal.
