//! The request log and fault injection rules.

use std::time::Duration;

use super::errors::ApiError;

/// One request the emulator received, with the status it answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestRecord {
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string (empty if none).
    pub query: String,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`,
    /// `discovery`, `version`, or empty for an unknown path.
    pub verb: String,
    /// API group of the addressed resource (empty for core or non-resource paths).
    pub group: String,
    /// Plural resource name (empty for non-resource paths).
    pub resource: String,
    /// `status` for the status subresource.
    pub subresource: Option<String>,
    /// Namespace in the path.
    pub namespace: Option<String>,
    /// Object name in the path.
    pub name: Option<String>,
    /// `Content-Type` of the request.
    pub content_type: Option<String>,
    /// `Accept` of the request.
    pub accept: Option<String>,
    /// The `fieldManager` query parameter.
    pub field_manager: Option<String>,
    /// `User-Agent` of the request: tells the clients of one emulator apart (a real API server
    /// tells them apart by their credentials).
    pub user_agent: Option<String>,
    /// The request body (lossy UTF-8).
    pub body: String,
    /// The HTTP status answered; 0 while a fault predicate looks at the request.
    pub status: u16,
}

impl RequestRecord {
    /// The (decoded) value of a query parameter.
    pub fn query_param(&self, key: &str) -> Option<String> {
        parse_query(&self.query).into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Whether this is a watch request.
    pub fn is_watch(&self) -> bool {
        self.verb == "watch"
    }

    /// Whether this is a server-side apply.
    pub fn is_apply(&self) -> bool {
        self.method == "PATCH" && self.content_type.as_deref().is_some_and(|c| c.starts_with("application/apply-patch"))
    }
}

/// A response forced by fault injection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 500 InternalError.
    InternalError,
    /// 429 TooManyRequests with a `Retry-After` header (seconds).
    TooManyRequests {
        /// Value of the `Retry-After` header.
        retry_after_secs: u64,
    },
    /// 503 ServiceUnavailable.
    ServiceUnavailable,
    /// Any status code and reason.
    Status {
        /// HTTP status code.
        code: u16,
        /// `Status.reason`.
        reason: String,
        /// `Status.message`.
        message: String,
    },
}

impl Fault {
    pub(crate) fn to_error(&self) -> ApiError {
        match self {
            Fault::InternalError => ApiError::Internal("injected fault: etcdserver: request timed out".to_owned()),
            Fault::TooManyRequests { .. } => ApiError::Custom {
                code: 429,
                reason: "TooManyRequests".to_owned(),
                message: "injected fault: too many requests, please try again later".to_owned(),
            },
            Fault::ServiceUnavailable => ApiError::Custom {
                code: 503,
                reason: "ServiceUnavailable".to_owned(),
                message: "injected fault: the server is currently unable to handle the request".to_owned(),
            },
            Fault::Status { code, reason, message } => {
                ApiError::Custom { code: *code, reason: reason.clone(), message: message.clone() }
            }
        }
    }

    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            Fault::TooManyRequests { retry_after_secs } => Some(Duration::from_secs(*retry_after_secs)),
            _ => None,
        }
    }
}

/// A predicate over requests.
pub(crate) type RequestPredicate = Box<dyn Fn(&RequestRecord) -> bool + Send + Sync>;

pub(crate) struct FaultRule {
    pub(crate) remaining: usize,
    pub(crate) fault: Fault,
    pub(crate) when: RequestPredicate,
}

pub(crate) struct DelayRule {
    pub(crate) delay: Duration,
    pub(crate) when: RequestPredicate,
}

fn hex_val(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// Percent-decodes a query component (`+` is a space).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (bytes.get(i + 1).copied().and_then(hex_val), bytes.get(i + 2).copied().and_then(hex_val)) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits and decodes a query string.
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = parse_query("labelSelector=a%3Db%2Cc+in+(x)&watch=true&x");
        assert_eq!(q[0], ("labelSelector".into(), "a=b,c in (x)".into()));
        assert_eq!(q[1], ("watch".into(), "true".into()));
        assert_eq!(q[2], ("x".into(), String::new()));
        assert_eq!(percent_decode("100%"), "100%");
    }
}
