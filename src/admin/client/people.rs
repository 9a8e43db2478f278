//! `understudy approvals` and `understudy feedback`: what people decide
//! about the candidate's answers, through the admin API (docs/src/concepts/stages.md), so that
//! nobody needs curl for it. The token is sent as for every other call.

use super::{Admin, Error, timestamp};
use crate::admin::wire;
use http::Method;
use serde_json::Value;
use std::io::Write;

/// `approvals list` filters.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub route: Option<String>,
    pub segment: Option<String>,
    pub status: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<i64>,
}

impl Admin {
    /// `understudy approvals list`: one page, oldest first, as a table.
    pub async fn approvals(&self, filter: &ListFilter, out: &mut dyn Write) -> anyhow::Result<()> {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("route", filter.route.clone()),
            ("segment", filter.segment.clone()),
            ("status", filter.status.clone()),
            ("limit", filter.limit.map(|l| l.to_string())),
            ("cursor", filter.cursor.map(|c| c.to_string())),
        ] {
            if let Some(v) = value {
                query.append_pair(name, &v);
            }
        }
        let query = query.finish();
        let path = if query.is_empty() {
            "/api/v1/approvals".to_string()
        } else {
            format!("/api/v1/approvals?{query}")
        };
        let page: Value = self.get(&path).await?;
        let list = page["approvals"].as_array().cloned().unwrap_or_default();
        if list.is_empty() {
            writeln!(out, "(no approvals)")?;
            return Ok(());
        }
        let header: Vec<String> = [
            "ID",
            "CREATED",
            "ROUTE",
            "SEGMENT",
            "STATUS",
            "EXCHANGE",
            "DECIDED BY",
            "REASON",
        ]
        .map(String::from)
        .to_vec();
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|a| {
                vec![
                    text(&a["id"]),
                    a["ts"].as_i64().map_or("-".into(), timestamp),
                    text(&a["route"]),
                    text(&a["segment"]),
                    text(&a["status"]),
                    text(&a["exchange_id"]),
                    text(&a["decided_by"]),
                    text(&a["reason"]),
                ]
            })
            .collect();
        crate::report::aligned::write(out, &header, &rows, &[], "")?;
        if let Some(next) = page["next_cursor"].as_str() {
            writeln!(out, "more: add --cursor {next}")?;
        }
        Ok(())
    }

    /// `understudy approvals show ID`: the decision, the request and both answers.
    pub async fn approval(&self, id: i64, out: &mut dyn Write) -> anyhow::Result<()> {
        let one: Value = self.get(&format!("/api/v1/approvals/{id}")).await?;
        let a = &one["approval"];
        for (label, value) in [
            ("approval", text(&a["id"])),
            ("exchange", text(&a["exchange_id"])),
            ("created", a["ts"].as_i64().map_or("-".into(), timestamp)),
            ("route", text(&a["route"])),
            ("segment", text(&a["segment"])),
            ("status", text(&a["status"])),
            ("decided by", text(&a["decided_by"])),
            ("reason", text(&a["reason"])),
        ] {
            writeln!(out, "{label:<10} {value}")?;
        }
        for (label, value) in [
            ("request", &a["request"]),
            ("incumbent", &a["incumbent"]),
            ("candidate", &a["candidate"]),
        ] {
            let pretty = serde_json::to_string_pretty(value).unwrap_or_default();
            writeln!(out, "\n{label}:")?;
            for line in pretty.lines() {
                writeln!(out, "  {}", crate::report::show::clean(line))?;
            }
        }
        Ok(())
    }

    /// `understudy approvals approve|reject ID --reason TEXT`.
    pub async fn decide(
        &self,
        id: i64,
        decision: &str,
        reason: &str,
        out: &mut dyn Write,
    ) -> anyhow::Result<()> {
        let body = wire::ApprovalDecision {
            decision: decision.to_string(),
            reason: Some(reason.to_string()),
        };
        let answer: Value = self
            .call(
                Method::POST,
                &format!("/api/v1/approvals/{id}"),
                Some(&body),
            )
            .await?;
        let a = &answer["approval"];
        writeln!(
            out,
            "approval {} {} (exchange {}, {}/{})",
            text(&a["id"]),
            text(&a["status"]),
            text(&a["exchange_id"]),
            text(&a["route"]),
            text(&a["segment"]),
        )?;
        Ok(())
    }

    /// `understudy feedback EXCHANGE_ID`: a rating, a comment, a reversal.
    pub async fn feedback(&self, fb: &wire::Feedback, out: &mut dyn Write) -> anyhow::Result<()> {
        if fb.rating.is_none() && !fb.reversed {
            return Err(Error::Usage("feedback needs --rating or --reversed".into()).into());
        }
        let _: Value = self
            .call(Method::POST, "/api/v1/feedback", Some(fb))
            .await?;
        let mut what = Vec::new();
        if let Some(r) = fb.rating {
            what.push(format!("rating {r}"));
        }
        if fb.reversed {
            what.push("reversed".to_string());
        }
        writeln!(
            out,
            "feedback on {} recorded ({})",
            fb.exchange_id,
            what.join(", ")
        )?;
        Ok(())
    }
}

/// A JSON value as a cell: strings bare, null as `-`.
fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => crate::report::show::clean(s).into_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cells_are_bare_and_clean() {
        use super::text;
        use serde_json::json;
        assert_eq!(text(&json!("a\u{1b}[2J")), "a\\x1b[2J");
        assert_eq!(text(&json!(null)), "-");
        assert_eq!(text(&json!(7)), "7");
    }
}
