//! "Did you mean …?": the nearest known name to a misspelt one.
//!
//! One rule for every place that refuses a name (config keys and values,
//! segments on the command line): a case-insensitive match first, else the
//! closest by edit distance, and only when it is close enough to be a typo.

/// The known name nearest to `word`, when `word` looks like a typo of it.
pub fn nearest<'a, I>(word: &str, known: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let lower = word.to_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for name in known {
        if name.to_lowercase() == lower {
            return Some(name);
        }
        let distance = strsim::damerau_levenshtein(&lower, &name.to_lowercase());
        if best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, name));
        }
    }
    // A third of the word's length (at least one edit): `tolerence` →
    // `tolerance`, `max_body_byte` → `max_body_bytes`, but not `x` → `mode`.
    let allowed = (word.chars().count() / 3).max(1);
    best.filter(|(d, _)| *d <= allowed).map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::nearest;

    #[test]
    fn typos_find_their_key_and_strangers_find_nothing() {
        let keys = ["mode", "ignore", "tolerance", "abs_tolerance"];
        assert_eq!(nearest("tolerence", keys), Some("tolerance"));
        assert_eq!(nearest("Mode", keys), Some("mode"));
        assert_eq!(nearest("igonre", keys), Some("ignore"));
        assert_eq!(nearest("colour", keys), None);
        assert_eq!(nearest("x", keys), None);
        assert_eq!(
            nearest("Enterprise", ["enterprise", "smb"]),
            Some("enterprise")
        );
    }
}
