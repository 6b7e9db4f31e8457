//! Text bounds shared by the writers (Event notes, OpenReports messages).

/// At most `limit` bytes of `s`, cut at a character boundary and ended with `…` when cut.
pub fn cut_to_bytes(s: &str, limit: usize) -> String {
    if s.len() <= limit {
        return s.to_string();
    }
    let room = limit.saturating_sub('…'.len_utf8());
    let end = s.char_indices().map(|(i, c)| i + c.len_utf8()).take_while(|end| *end <= room).last().unwrap_or(0);
    format!("{}…", &s[..end])
}
