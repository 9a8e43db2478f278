//! Checks the AI-answer settings (docs/src/guide/llm.md): `compare.mode = "llm"` (protocol,
//! text stages, bands, embedding, judge), `[routes.cost]` and the spend
//! controls of `mirror`.

use super::Checker;
use super::policy::{json_compare, judge_compare};
use crate::config::file::{
    BandsFile, CompareFile, CostFile, EmbeddingFile, FocusFile, MirrorFile, PriceFile,
};
use crate::config::{Band, Bands, Cost, Embedding, Focus, LlmCompare, Price, Protocol, TextStage};
use std::time::Duration;
use toml::Spanned;

const SIMILARITY_THRESHOLD: f64 = 0.8;
const EMBEDDING_THRESHOLD: f64 = 0.9;
const EMBEDDING_TIMEOUT: Duration = Duration::from_secs(2);
const EMBEDDING_MAX_IN_FLIGHT: usize = 16;

pub(super) fn compare(c: &mut Checker<'_>, f: &CompareFile) -> LlmCompare {
    let protocol = match &f.protocol {
        None => Protocol::Auto,
        Some(p) => p.get_ref().parse().unwrap_or_else(|e| {
            c.issue(p.span(), "compare.protocol", format!("{e}"));
            Protocol::Auto
        }),
    };
    let text = stages(c, f);
    let embedding = match (&f.embedding, text.contains(&TextStage::Embedding)) {
        (Some(e), true) => Some(embedding(c, e)),
        (Some(e), false) => {
            let msg = "`embedding` is set but `text` names no \"embedding\" stage";
            c.issue(e.span(), "compare.embedding", msg);
            None
        }
        (None, true) => {
            let span = f.text.as_ref().map_or(0..0, Spanned::span);
            let msg = "text stage \"embedding\" needs `embedding = { url, model }`";
            c.issue(span, "compare.text", msg);
            None
        }
        (None, false) => None,
    };
    let judge = if text.contains(&TextStage::Judge) {
        Some(judge_compare(c, f))
    } else {
        if let Some(url) = &f.url {
            let msg = "`url` (the judge) is set but `text` names no \"judge\" stage";
            c.issue(url.span(), "compare.url", msg);
        }
        None
    };
    let mut arguments = json_compare(c, f);
    arguments.noise = None;
    LlmCompare {
        protocol,
        arguments,
        threshold: f
            .threshold
            .as_ref()
            .map_or(SIMILARITY_THRESHOLD, |t| c.fraction("compare.threshold", t)),
        bands: bands(c, f.bands.as_ref()),
        text,
        embedding,
        judge,
    }
}

/// The text stages: known names, no repeats, the judge (the most expensive) last.
fn stages(c: &mut Checker<'_>, f: &CompareFile) -> Vec<TextStage> {
    let Some(text) = &f.text else {
        return vec![TextStage::Similarity];
    };
    let mut out = Vec::new();
    for name in &text.get_ref().0 {
        match TextStage::parse(name) {
            Some(stage) if out.contains(&stage) => {
                c.issue(
                    text.span(),
                    "compare.text",
                    format!("stage {name:?} is named twice"),
                );
            }
            Some(stage) => out.push(stage),
            None => {
                let msg = format!(
                    "unknown text stage {name:?}: expected \"exact\", \"similarity\", \"embedding\" or \"judge\""
                );
                c.issue(text.span(), "compare.text", msg);
            }
        }
    }
    if out.is_empty() && text.get_ref().0.is_empty() {
        c.issue(
            text.span(),
            "compare.text",
            "an empty cascade decides nothing",
        );
    }
    if let Some(at) = out.iter().position(|s| *s == TextStage::Judge)
        && at + 1 != out.len()
    {
        let msg = "\"judge\" must be the last stage: it decides every pair it sees";
        c.issue(text.span(), "compare.text", msg);
    }
    if out.is_empty() {
        out.push(TextStage::Similarity);
    }
    out
}

fn bands(c: &mut Checker<'_>, f: Option<&Spanned<BandsFile>>) -> Bands {
    let mut out = Bands::default();
    let Some(f) = f else { return out };
    let f = f.get_ref();
    if let Some(b) = &f.similarity {
        out.similarity = band(c, "compare.bands.similarity", b);
    }
    if let Some(b) = &f.embedding {
        out.embedding = band(c, "compare.bands.embedding", b);
    }
    out
}

fn band(c: &mut Checker<'_>, field: &str, b: &Spanned<Vec<f64>>) -> Band {
    match b.get_ref()[..] {
        [low, high] if (0.0..=1.0).contains(&low) && (low..=1.0).contains(&high) => {
            Band { low, high }
        }
        _ => {
            let msg = format!(
                "{:?} must be [low, high] with 0 <= low <= high <= 1",
                b.get_ref()
            );
            c.issue(b.span(), field, msg);
            Band {
                low: 0.0,
                high: 1.0,
            }
        }
    }
}

fn embedding(c: &mut Checker<'_>, f: &Spanned<EmbeddingFile>) -> Embedding {
    let e = f.get_ref();
    let url = c
        .url("compare.embedding.url", &e.url)
        .and_then(|_| e.url.get_ref().parse().ok())
        .unwrap_or_default();
    if e.model.is_empty() {
        c.issue(f.span(), "compare.embedding.model", "model is empty");
    }
    let api_key = e.api_key_env.as_ref().and_then(|name| {
        let key = std::env::var(name).ok();
        if key.is_none() {
            tracing::warn!(variable = %name, "compare.embedding.api_key_env is not set; calling the endpoint without a key");
        }
        key
    });
    Embedding {
        url,
        model: e.model.clone(),
        threshold: (e.threshold.as_ref()).map_or(EMBEDDING_THRESHOLD, |t| {
            c.fraction("compare.embedding.threshold", t)
        }),
        timeout: (e.timeout.as_ref()).map_or(EMBEDDING_TIMEOUT, |t| {
            c.timeout("compare.embedding.timeout", t)
        }),
        max_in_flight: (e.max_in_flight.as_ref()).map_or(EMBEDDING_MAX_IN_FLIGHT, |n| {
            c.nonzero("compare.embedding.max_in_flight", n)
        }),
        api_key,
    }
}

pub(super) fn cost(c: &mut Checker<'_>, f: &CostFile) -> Cost {
    Cost {
        incumbent: f.incumbent.as_ref().map(|p| price(c, "cost.incumbent", p)),
        candidate: f.candidate.as_ref().map(|p| price(c, "cost.candidate", p)),
    }
}

fn price(c: &mut Checker<'_>, field: &str, p: &PriceFile) -> Price {
    let mut dollars = |key: &str, v: &Spanned<f64>| {
        let x = *v.get_ref();
        if !(x >= 0.0 && x.is_finite()) {
            let msg = format!("{x} must be a finite number of dollars >= 0");
            c.issue(v.span(), format!("{field}.{key}"), msg);
        }
        x
    };
    Price {
        input_per_mtok: dollars("input_per_mtok", &p.input_per_mtok),
        output_per_mtok: dollars("output_per_mtok", &p.output_per_mtok),
    }
}

/// `mirror.sample`, `mirror.budget` and `mirror.focus`.
pub(super) fn spend(c: &mut Checker<'_>, f: &MirrorFile) -> (f64, Option<f64>, Focus) {
    let sample = c.fraction("mirror.sample", &f.sample);
    let budget = f.budget.as_ref().map(|b| {
        let v = *b.dollars_per_day.get_ref();
        if !(v >= 0.0 && v.is_finite()) {
            let msg = format!("{v} must be a finite number of dollars >= 0");
            c.issue(
                b.dollars_per_day.span(),
                "mirror.budget.dollars_per_day",
                msg,
            );
        }
        v
    });
    let focus = match f.focus {
        FocusFile::All => Focus::All,
        FocusFile::Undecided => Focus::Undecided,
    };
    (sample, budget, focus)
}

#[cfg(test)]
mod tests {
    use crate::config::{Compare, TextStage, parse};

    fn route(extra: &str) -> String {
        format!(
            "[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nincumbent = \"http://127.0.0.1:1\"\ncandidate = \"http://127.0.0.1:2\"\n{extra}\n"
        )
    }

    #[test]
    fn llm_mode_defaults_and_cascade() {
        let c = parse(&route("compare = { mode = \"llm\" }")).unwrap();
        let Compare::Llm(l) = &c.routes[0].compare else {
            panic!("llm mode")
        };
        assert_eq!(l.text, [TextStage::Similarity]);
        assert_eq!(l.protocol, crate::config::Protocol::Auto);
        assert_eq!(l.threshold, 0.8);

        let text = r#"compare = { mode = "llm", protocol = "openai-chat", text = ["similarity", "embedding", "judge"], url = "http://127.0.0.1:3/judge", embedding = { url = "http://127.0.0.1:4/v1/embeddings", model = "m" }, bands = { similarity = [0.3, 0.9] }, ignore = ["/tool_calls/*/arguments/id"] }
cost = { candidate = { input_per_mtok = 0.15, output_per_mtok = 0.6 } }
mirror = { sample = 0.25, budget = { dollars_per_day = 5.0 }, focus = "undecided" }
guard = { max_ttft_ratio = 1.5 }"#;
        let c = parse(&route(text)).unwrap();
        let r = &c.routes[0];
        let Compare::Llm(l) = &r.compare else {
            panic!("llm mode")
        };
        assert_eq!(
            l.text,
            [
                TextStage::Similarity,
                TextStage::Embedding,
                TextStage::Judge
            ]
        );
        assert_eq!(l.bands.similarity.low, 0.3);
        assert_eq!(l.embedding.as_ref().unwrap().threshold, 0.9);
        assert!(l.judge.is_some());
        assert_eq!(l.arguments.ignore.len(), 1);
        assert_eq!(r.cost.candidate.unwrap().output_per_mtok, 0.6);
        assert!(r.cost.incumbent.is_none());
        assert_eq!(r.mirror.sample, 0.25);
        assert_eq!(r.mirror.budget, Some(5.0));
        assert_eq!(r.mirror.focus, crate::config::Focus::Undecided);
        assert_eq!(r.guard.max_ttft_ratio, Some(1.5));
        // Integers are numbers too.
        let c = parse(&route(
            "mirror = { sample = 0, budget = { dollars_per_day = 5 } }",
        ))
        .unwrap();
        assert_eq!(
            (c.routes[0].mirror.sample, c.routes[0].mirror.budget),
            (0.0, Some(5.0))
        );
    }

    #[test]
    fn llm_mode_mistakes_are_issues() {
        for (extra, expected) in [
            (
                "compare = { mode = \"llm\", protocol = \"gemini\" }",
                "unknown protocol \"gemini\"",
            ),
            (
                "compare = { mode = \"llm\", text = \"vibes\" }",
                "unknown text stage \"vibes\"",
            ),
            (
                "compare = { mode = \"llm\", text = [\"judge\", \"similarity\"], url = \"http://127.0.0.1:3\" }",
                "\"judge\" must be the last stage",
            ),
            (
                "compare = { mode = \"llm\", text = \"embedding\" }",
                "needs `embedding = { url, model }`",
            ),
            (
                "compare = { mode = \"llm\", text = \"judge\" }",
                "needs `url`",
            ),
            (
                "compare = { mode = \"llm\", bands = { similarity = [0.9, 0.1] } }",
                "must be [low, high]",
            ),
            (
                "compare = { mode = \"json\", protocol = \"auto\" }",
                "`protocol` belongs to mode \"llm\"",
            ),
            (
                "compare = { mode = \"text\", ignore = [\"/a\"] }",
                "`ignore` belongs to mode \"json\" or \"llm\"",
            ),
            ("mirror = { sample = 1.5 }", "1.5 is outside 0..=1"),
            (
                "cost = { candidate = { input_per_mtok = -1.0, output_per_mtok = 1.0 } }",
                "must be a finite number of dollars",
            ),
            (
                "cost = { candidate = { input_per_mtok = 1.0 } }",
                "output_per_mtok",
            ),
            (
                "guard = { max_ttft_ratio = 0.0 }",
                "must be a finite number > 0",
            ),
        ] {
            let err = parse(&route(extra)).unwrap_err().to_string();
            assert!(err.contains(expected), "{extra}: {err}");
        }
    }
}
