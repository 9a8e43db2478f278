//! `approvals` and `feedback`: the commands for what people decide about the
//! candidate's answers. They call the admin API of a running proxy.

use super::{AdminArgs, ops};
use crate::admin::client::ListFilter;
use std::process::ExitCode;

/// `understudy approvals ...`.
#[derive(Debug, clap::Subcommand)]
pub enum Approvals {
    /// A page of approvals, oldest first (no request or answer content).
    List {
        /// Only this route.
        #[arg(long)]
        route: Option<String>,
        /// Only this segment.
        #[arg(long)]
        segment: Option<String>,
        /// Only this status: pending, approved, rejected or expired.
        #[arg(long)]
        status: Option<String>,
        /// At most this many (the API caps a page at 1000).
        #[arg(long)]
        limit: Option<usize>,
        /// Start after this approval id (the `more:` line of the page before).
        #[arg(long)]
        cursor: Option<i64>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// One approval with the request and both answers.
    Show {
        /// The approval id (the ID column of `approvals list`).
        id: i64,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Approve a pending answer: it is delivered to autonomy.deliver_url.
    Approve {
        /// The approval id.
        id: i64,
        /// Why; it is kept with the decision.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Reject a pending answer.
    Reject {
        /// The approval id.
        id: i64,
        /// Why; it is kept with the decision.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// `understudy feedback EXCHANGE_ID`: a person's rating of the candidate's
/// answer (rating > 0: acceptable in place of the incumbent's), or a reversal
/// of an answer the candidate served.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["rating", "reversed"])))]
pub struct Feedback {
    /// The exchange id (the x-understudy-exchange-id response header).
    pub exchange_id: String,
    /// The rating: above 0 means the candidate's answer was acceptable.
    #[arg(long, allow_negative_numbers = true)]
    pub rating: Option<i64>,
    /// A comment kept with the rating.
    #[arg(long, default_value = "")]
    pub comment: String,
    /// A person reversed the answer the candidate served (stage notify).
    #[arg(long)]
    pub reversed: bool,
    /// Who rates; one exchange counts once per rater. Default: this machine's address as the proxy sees it.
    #[arg(long)]
    pub rater: Option<String>,
    #[command(flatten)]
    pub admin: AdminArgs,
}

pub fn approvals(command: Approvals) -> anyhow::Result<ExitCode> {
    match command {
        Approvals::List {
            route,
            segment,
            status,
            limit,
            cursor,
            admin,
        } => {
            let filter = ListFilter {
                route,
                segment,
                status,
                limit,
                cursor,
            };
            ops(&admin, async |a, out| a.approvals(&filter, out).await)
        }
        Approvals::Show { id, admin } => ops(&admin, async |a, out| a.approval(id, out).await),
        Approvals::Approve { id, reason, admin } => ops(&admin, async |a, out| {
            a.decide(id, "approve", &reason, out).await
        }),
        Approvals::Reject { id, reason, admin } => ops(&admin, async |a, out| {
            a.decide(id, "reject", &reason, out).await
        }),
    }
}

pub fn feedback(f: Feedback) -> anyhow::Result<ExitCode> {
    let fb = crate::admin::wire::Feedback {
        exchange_id: f.exchange_id,
        rating: f.rating,
        comment: f.comment,
        reversed: f.reversed,
        rater: f.rater,
    };
    ops(&f.admin, async |a, out| a.feedback(&fb, out).await)
}
