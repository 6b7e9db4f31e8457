//! Strings that come from the cluster or a user are bounded before they reach a message, the
//! status or a metric label: a node, a label value or a policy field can be any size.
//! `cut_to_bytes` bounds what the API server limits in bytes (Event notes, OpenReports messages).

/// Characters of a value quoted in a message (a version, an image, a field that is garbage).
pub const SNIPPET_CHARS: usize = 64;
/// Characters of a name (a node, a pool, a Lease): Kubernetes allows 253.
pub const NAME_CHARS: usize = 253;

/// At most `max` characters of `s`; a cut string ends in `…` (within the `max`).
pub fn cap(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some(_) => {
            let keep = s.char_indices().nth(max.saturating_sub(1)).map_or(0, |(i, _)| i);
            format!("{}…", &s[..keep])
        }
    }
}

/// A value quoted in a message: at most [`SNIPPET_CHARS`] characters.
pub fn snippet(s: &str) -> String {
    cap(s, SNIPPET_CHARS)
}

/// A name in a message, a subject or a label: at most [`NAME_CHARS`] characters.
pub fn name(s: &str) -> String {
    cap(s, NAME_CHARS)
}

/// The first letter in upper case, for a sentence that starts with a name.
pub fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// At most `limit` bytes of `s`, cut at a character boundary and ended with `…` when cut.
pub fn cut_to_bytes(s: &str, limit: usize) -> String {
    if s.len() <= limit {
        return s.to_string();
    }
    let room = limit.saturating_sub('…'.len_utf8());
    let end = s.char_indices().map(|(i, c)| i + c.len_utf8()).take_while(|end| *end <= room).last().unwrap_or(0);
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_strings_are_kept_and_long_ones_end_in_an_ellipsis() {
        assert_eq!(cap("abc", 3), "abc");
        assert_eq!(cap("abcd", 3), "ab…");
        assert_eq!(cap("ééééé", 4), "ééé…");
        assert_eq!(cap("", 0), "");
    }

    proptest! {
        #[test]
        fn cap_never_exceeds_its_bound(s in "\\PC{0,300}", max in 1usize..100) {
            let c = cap(&s, max);
            prop_assert!(c.chars().count() <= max);
            if s.chars().count() <= max {
                prop_assert_eq!(c, s);
            }
        }
    }
}
