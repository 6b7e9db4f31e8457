//! Strings that come from the cluster or a user are bounded before they reach a message, the
//! status or a metric label: a node, a label value or a policy field can be any size.
//! `cut_to_bytes` bounds what the API server limits in bytes (Event notes, OpenReports messages).
//! `to_stdout` writes a command's output.

use std::borrow::Cow;

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

/// `s` safe to print on a terminal: control characters (escape sequences, carriage returns,
/// newlines) and the bidirectional overrides that reorder text are written as escapes
/// (`\u{1b}`, `\r`), so a string from the cluster can neither forge nor hide output.
pub fn printable(s: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
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

/// Writes a command's output to stdout. A reader that went away (`| head -1`, a closed pager)
/// ends the output: that is not an error, and nothing is left to say to it.
pub fn to_stdout(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
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

    #[test]
    fn control_characters_and_bidi_overrides_are_escaped() {
        assert_eq!(printable("aks-1"), "aks-1");
        assert_eq!(printable("a\u{1b}[31mred\r\nb"), "a\\u{1b}[31mred\\r\\nb");
        assert_eq!(printable("x\u{202E}y"), "x\\u{202e}y");
        assert_eq!(printable("été ×3"), "été ×3");
    }

    proptest! {
        /// Nothing printable hides a control character; clean strings are kept as they are.
        #[test]
        fn printable_strings_hold_no_control_character(s in "\\PC{0,40}|[\\x00-\\x1f\\x7f\\x{80}-\\x{9f}\\x{202a}-\\x{202e}a-z]{0,40}") {
            let p = printable(&s);
            prop_assert!(!p.chars().any(|c| c.is_control() || ('\u{202A}'..='\u{202E}').contains(&c)), "{:?}", p);
            if !s.chars().any(|c| c.is_control() || ('\u{202A}'..='\u{202E}').contains(&c) || ('\u{2066}'..='\u{2069}').contains(&c)) {
                prop_assert_eq!(p.as_ref(), s.as_str());
            }
        }

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
