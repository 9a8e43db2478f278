//! Safety: scans a candidate's body for the route's `deny` patterns.
//!
//! A hit becomes a `safety` event (and, in canary, a rollback of the segment);
//! this module only finds it. Patterns are compiled at config load.

use regex::Regex;

/// The pattern text of the first `deny` regex that matches `body` (read as
/// lossy UTF-8), in configuration order; `None` when the body is clean.
pub fn first_hit<'a>(deny: &'a [Regex], body: &[u8]) -> Option<&'a str> {
    if deny.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(body);
    deny.iter().find(|re| re.is_match(&text)).map(Regex::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_matching_pattern() {
        let deny = [
            Regex::new(r"(?i)ssn:\s*\d{3}-\d{2}-\d{4}").unwrap(),
            Regex::new(r"(?i)as an ai language model").unwrap(),
            Regex::new("secret").unwrap(),
        ];
        let body = br#"{"text": "As an AI language model, I cannot share the secret"}"#;
        assert_eq!(first_hit(&deny, body), Some("(?i)as an ai language model"));
        assert_eq!(
            first_hit(&deny, b"SSN: 123-45-6789"),
            Some(deny[0].as_str())
        );
        assert_eq!(first_hit(&deny, br#"{"score": 0.9}"#), None);
        assert_eq!(first_hit(&[], b"secret"), None);
    }

    #[test]
    fn invalid_utf8_is_read_lossily() {
        let deny = [Regex::new("secret").unwrap()];
        assert_eq!(first_hit(&deny, b"\xff\xfe secret \xc3"), Some("secret"));
    }
}
