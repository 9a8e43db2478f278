//! Checks `[routes.slices]`: header names, pointers, bounds of the search
//! and of the test, the notification schedule.

use super::Checker;
use crate::config::file::SlicesFile;
use crate::config::slices::{Fdr, Slices};
use toml::Spanned;

pub(super) fn slices(c: &mut Checker<'_>, f: &SlicesFile) -> Slices {
    let within = |c: &mut Checker<'_>, field: &str, n: &Spanned<usize>, lo: usize, hi: usize| {
        let v = *n.get_ref();
        if !(lo..=hi).contains(&v) {
            c.issue(n.span(), field, format!("{v} is outside {lo}..={hi}"));
        }
        v.clamp(lo, hi)
    };
    let alpha = *f.alpha.get_ref();
    if !(alpha > 0.0 && alpha < 1.0) {
        let msg = format!("{alpha} is outside 0 < alpha < 1");
        c.issue(f.alpha.span(), "slices.alpha", msg);
    }
    let fdr = Fdr::parse(f.fdr.get_ref()).unwrap_or_else(|| {
        let msg = format!(
            "unknown procedure {:?} (want \"by\" or \"bh\")",
            f.fdr.get_ref()
        );
        c.issue(f.fdr.span(), "slices.fdr", msg);
        Fdr::By
    });
    if *f.min_support.get_ref() == 0 {
        let span = f.min_support.span();
        c.issue(span, "slices.min_support", "must be greater than zero");
    }
    Slices {
        enabled: f.enabled,
        headers: c.header_names("slices.headers", &f.headers),
        json: c.pointers("slices.json", &f.json),
        json_top_level: f.json_top_level,
        path: f.path,
        query: f.query,
        max_values: within(c, "slices.max_values", &f.max_values, 1, 250),
        max_conditions: within(c, "slices.max_conditions", &f.max_conditions, 1, 3),
        min_support: (*f.min_support.get_ref()).max(1),
        alpha: alpha.clamp(f64::MIN_POSITIVE, 0.999),
        fdr,
        max_slices: within(c, "slices.max_slices", &f.max_slices, 1, 1000),
        every: c.timeout("slices.every", &f.every),
        window: c.timeout("slices.window", &f.window),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use crate::config::slices::Fdr;

    fn route(slices: &str) -> String {
        format!(
            "[listen]\naddr = \"127.0.0.1:0\"\n[admin]\naddr = \"127.0.0.1:0\"\n[store]\npath = \"x.db\"\n\
             [[routes]]\nname = \"r\"\npath_prefix = \"/\"\nincumbent = \"http://127.0.0.1:1\"\n{slices}"
        )
    }

    #[test]
    fn defaults_are_safe_and_on() {
        let c = parse(&route("")).unwrap();
        let s = &c.routes[0].slices;
        assert!(s.enabled);
        assert_eq!(s.max_conditions, 2);
        assert_eq!(s.min_support, 100);
        assert_eq!(s.fdr, Fdr::By);
        let names: Vec<&str> = s.headers.iter().map(|h| h.as_str()).collect();
        assert_eq!(names, ["accept-language", "content-type", "user-agent"]);
    }

    #[test]
    fn settings_are_read() {
        let c = parse(&route(
            "[routes.slices]\nheaders = [\"X-Region\"]\njson = [\"/customer/country\"]\n\
             max_conditions = 3\nmin_support = 50\nalpha = 0.01\nfdr = \"bh\"\nevery = \"30s\"\n",
        ))
        .unwrap();
        let s = &c.routes[0].slices;
        assert_eq!(s.headers[0].as_str(), "x-region");
        assert_eq!(s.json[0].as_str(), "/customer/country");
        assert_eq!((s.max_conditions, s.min_support, s.alpha), (3, 50, 0.01));
        assert_eq!(s.fdr, Fdr::Bh);
        assert_eq!(s.every, std::time::Duration::from_secs(30));
    }

    #[test]
    fn bad_values_are_each_an_issue_with_a_position() {
        let err = parse(&route(
            "[routes.slices]\nheaders = [\"bad header\"]\njson = [\"no-slash\"]\n\
             max_conditions = 4\nmin_support = 0\nalpha = 1.5\nfdr = \"bonferroni\"\nevery = \"0s\"\nmax_values = 0\n",
        ))
        .unwrap_err()
        .to_string();
        for field in [
            "slices.headers",
            "slices.json",
            "slices.max_conditions",
            "slices.min_support",
            "slices.alpha",
            "slices.fdr",
            "slices.every",
            "slices.max_values",
        ] {
            assert!(err.contains(field), "{field} missing from: {err}");
        }
        assert!(err.contains("bonferroni"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let err = parse(&route("[routes.slices]\nmax_condition = 2\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_condition"), "{err}");
    }
}
