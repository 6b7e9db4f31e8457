//! Label and field selectors (`labelSelector=`, `fieldSelector=` query parameters).

use serde_json::Value;

use super::errors::ApiError;

#[derive(Clone, Debug, PartialEq, Eq)]
enum LabelOp {
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    Gt(i64),
    Lt(i64),
}

/// A parsed label selector (the string syntax of `labels.Parse`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    reqs: Vec<(String, LabelOp)>,
}

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (f,g),!h,i`. An empty string selects everything.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            reqs.push(parse_requirement(part)?);
        }
        Ok(Self { reqs })
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether an object's `metadata.labels` match.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.reqs.iter().all(|(key, op)| match op {
            LabelOp::Equals(v) => get(key) == Some(v.as_str()),
            LabelOp::NotEquals(v) => get(key) != Some(v.as_str()),
            LabelOp::In(vs) => get(key).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelOp::NotIn(vs) => !get(key).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelOp::Exists => get(key).is_some(),
            LabelOp::DoesNotExist => get(key).is_none(),
            LabelOp::Gt(n) => get(key).and_then(|l| l.parse::<i64>().ok()).is_some_and(|l| l > *n),
            LabelOp::Lt(n) => get(key).and_then(|l| l.parse::<i64>().ok()).is_some_and(|l| l < *n),
        })
    }
}

fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn bad(part: &str) -> ApiError {
    ApiError::BadRequest(format!("unable to parse requirement: found '{part}', expected a valid label selector"))
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 316
        && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63 && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn parse_requirement(part: &str) -> Result<(String, LabelOp), ApiError> {
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        return if valid_key(key) { Ok((key.to_owned(), LabelOp::DoesNotExist)) } else { Err(bad(part)) };
    }
    if let Some(open) = part.find('(') {
        let close = part.rfind(')').filter(|c| *c > open).ok_or_else(|| bad(part))?;
        if !part[close + 1..].trim().is_empty() {
            return Err(bad(part));
        }
        let head: Vec<&str> = part[..open].split_whitespace().collect();
        let [key, op] = head[..] else {
            return Err(bad(part));
        };
        let values: Vec<String> = part[open + 1..close].split(',').map(|v| v.trim().to_owned()).collect();
        if !valid_key(key) || values.iter().any(|v| !valid_value(v)) {
            return Err(bad(part));
        }
        let op = match op {
            "in" => LabelOp::In(values),
            "notin" => LabelOp::NotIn(values),
            _ => return Err(bad(part)),
        };
        return Ok((key.to_owned(), op));
    }
    for (token, kind) in [("!=", 0), ("==", 1), ("=", 1), (">", 2), ("<", 3)] {
        if let Some((key, value)) = part.split_once(token) {
            let (key, value) = (key.trim(), value.trim());
            if !valid_key(key) || !valid_value(value) {
                return Err(bad(part));
            }
            let op = match kind {
                0 => LabelOp::NotEquals(value.to_owned()),
                1 => LabelOp::Equals(value.to_owned()),
                _ => {
                    let n = value.parse::<i64>().map_err(|_| bad(part))?;
                    if kind == 2 {
                        LabelOp::Gt(n)
                    } else {
                        LabelOp::Lt(n)
                    }
                }
            };
            return Ok((key.to_owned(), op));
        }
    }
    if valid_key(part) {
        Ok((part.to_owned(), LabelOp::Exists))
    } else {
        Err(bad(part))
    }
}

/// A parsed field selector. Supports `metadata.name` and `metadata.namespace` on every
/// resource, plus the extra fields a [`ResourceDef`](super::ResourceDef) lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    reqs: Vec<(String, bool, String)>,
}

impl FieldSelector {
    /// Parses `metadata.name=a,metadata.namespace!=b`.
    pub fn parse(s: &str, extra_fields: &[String]) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, equal, value) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(ApiError::BadRequest(format!("invalid selector: '{s}'; can't understand '{part}'")));
            };
            let key = key.trim();
            let supported =
                key == "metadata.name" || key == "metadata.namespace" || extra_fields.iter().any(|f| f == key);
            if !supported {
                return Err(ApiError::BadRequest(format!("field label not supported: {key}")));
            }
            reqs.push((key.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(Self { reqs })
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether an object matches.
    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|(key, equal, want)| {
            let pointer = format!("/{}", key.replace('.', "/"));
            let have = match obj.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (have == *want) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let obj = json!({"metadata": {"labels": {"a": "1", "b": "x"}}});
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&obj);
        assert!(m(""));
        assert!(m("a=1"));
        assert!(m("a==1,b"));
        assert!(!m("a!=1"));
        assert!(m("c!=1"));
        assert!(m("b in (x, y)"));
        assert!(!m("b notin (x,y)"));
        assert!(m("!c"));
        assert!(!m("!a"));
        assert!(m("a>0"));
        assert!(!m("a<1"));
        assert!(LabelSelector::parse("a in (x").is_err());
        assert!(LabelSelector::parse("a=b c").is_err());
    }

    #[test]
    fn field_selectors() {
        let obj = json!({"metadata": {"name": "n", "namespace": "ns"}});
        let m = |s: &str| FieldSelector::parse(s, &[]).unwrap().matches(&obj);
        assert!(m("metadata.name=n"));
        assert!(m("metadata.name=n,metadata.namespace!=x"));
        assert!(!m("metadata.namespace==x"));
        assert!(FieldSelector::parse("spec.x=1", &[]).is_err());
    }
}
