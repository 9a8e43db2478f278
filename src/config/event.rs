//! The kinds of rollout event a `[[notify]]` sink can ask for (docs/src/reference/configuration.md):
//! a value of the configuration, announced by `notify`.

use serde::Serialize;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A guard lowered a weight.
    Breach,
    /// A person (CLI or API) lowered a weight.
    Rollback,
    /// A weight was raised (by a person or a guard).
    Promote,
    /// A promotion was held or refused by a gate.
    GateFailed,
    /// The mirror kill switch was turned off.
    MirrorOff,
    /// Slice discovery found a slice significantly worse than the rest of
    /// its route that was not significant at its previous run.
    Slice,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Breach,
        Kind::Rollback,
        Kind::Promote,
        Kind::GateFailed,
        Kind::MirrorOff,
        Kind::Slice,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Breach => "breach",
            Kind::Rollback => "rollback",
            Kind::Promote => "promote",
            Kind::GateFailed => "gate_failed",
            Kind::MirrorOff => "mirror_off",
            Kind::Slice => "slice",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}
