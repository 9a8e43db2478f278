//! The stage of autonomy (docs/src/concepts/stages.md): what the candidate may do for the users
//! its weight puts in the canary. Pure: no IO. A value of the configuration
//! (`[routes.autonomy]`), used by the autonomy, the rollout and the metrics.
//!
//! Stages are ordered; `as_index` (0–4) is the `understudy_autonomy_stage`
//! gauge and `as_str` the name in the config, the API and `rollout_events`.

use serde::{Deserialize, Serialize};

/// What the candidate may do for canary users, from least to most.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The candidate never reaches a user.
    Shadow,
    /// Canary users get the incumbent's answer plus the candidate's as a suggestion.
    Recommend,
    /// Canary users get the incumbent's answer; the candidate's waits for a person's approval.
    Approve,
    /// The candidate serves canary users; each answer is posted for review.
    Notify,
    /// The candidate serves canary users without review (the default: a
    /// route without `[routes.autonomy]` behaves as before stages existed).
    #[default]
    Autonomous,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::Shadow,
        Stage::Recommend,
        Stage::Approve,
        Stage::Notify,
        Stage::Autonomous,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Shadow => "shadow",
            Stage::Recommend => "recommend",
            Stage::Approve => "approve",
            Stage::Notify => "notify",
            Stage::Autonomous => "autonomous",
        }
    }

    /// 0 (`shadow`) to 4 (`autonomous`).
    pub fn as_index(self) -> u8 {
        self as u8
    }

    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// One stage up, if any.
    pub fn next(self) -> Option<Stage> {
        Stage::ALL.get(self as usize + 1).copied()
    }

    /// One stage down, if any.
    pub fn previous(self) -> Option<Stage> {
        (self as usize).checked_sub(1).map(|i| Stage::ALL[i])
    }

    /// The names, for messages.
    pub fn names() -> String {
        Stage::ALL.map(Stage::as_str).join(", ")
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Stage;

    #[test]
    fn order_names_and_steps() {
        for (i, s) in Stage::ALL.into_iter().enumerate() {
            assert_eq!(s.as_index() as usize, i);
            assert_eq!(Stage::parse(s.as_str()), Some(s));
        }
        assert_eq!(Stage::Shadow.previous(), None);
        assert_eq!(Stage::Autonomous.next(), None);
        assert_eq!(Stage::Approve.next(), Some(Stage::Notify));
        assert_eq!(Stage::Approve.previous(), Some(Stage::Recommend));
        assert!(Stage::Recommend < Stage::Notify);
        assert_eq!(Stage::parse("auto"), None);
    }
}
