//! What can go wrong in a reconcile, and the bounded category each failure is counted under
//! (`support_reconcile_errors_total{category}`): the category is a function of the variant, so
//! the label values cannot drift from the code.

use std::fmt;
use std::future::Future;
use std::time::Duration;

/// The bounded values of the `category` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// An API call failed or did not answer in time (network, 5xx, 429, 403, a deadline).
    Api,
    /// The API server refused a write because the object changed meanwhile (409).
    Conflict,
    /// The API server refused what the operator sent as invalid (400, 413, 422).
    InvalidObject,
    /// The operator cannot act on what it was given (a policy without name or uid).
    Internal,
}

impl Category {
    /// Every category, pre-registered at 0 so that rates work from the start.
    pub const ALL: [Category; 4] = [Category::Api, Category::Conflict, Category::InvalidObject, Category::Internal];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Api => "api",
            Category::Conflict => "conflict",
            Category::InvalidObject => "invalid-object",
            Category::Internal => "internal",
        }
    }
}

/// The API calls of a reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// Server-side apply of the SupportStatus object (name, owner, spec).
    ApplyObject,
    /// Server-side apply of its status.
    ApplyStatus,
    /// Recording a verdict Event.
    PublishEvent,
    /// Reading the OpenReports ClusterReport.
    ReadReport,
    /// Server-side apply of the OpenReports ClusterReport.
    ApplyReport,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Call::ApplyObject => "applying the SupportStatus",
            Call::ApplyStatus => "applying the SupportStatus status",
            Call::PublishEvent => "recording the verdict Event",
            Call::ReadReport => "reading the ClusterReport",
            Call::ApplyReport => "applying the ClusterReport",
        })
    }
}

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{call}: {source}")]
    Api {
        /// Which call.
        call: Call,
        /// What the client said.
        #[source]
        source: kube::Error,
    },
    /// An API call did not answer within its deadline (abandoned).
    #[error("{call}: no answer within {after:?}")]
    Timeout {
        /// Which call.
        call: Call,
        /// The deadline.
        after: Duration,
    },
    /// A write refused because the object changed meanwhile.
    #[error("{call}: {source}")]
    Conflict {
        /// Which call.
        call: Call,
        /// What the client said.
        #[source]
        source: kube::Error,
    },
    /// A write refused as invalid.
    #[error("{call}: refused as invalid: {source}")]
    InvalidObject {
        /// Which call.
        call: Call,
        /// What the client said.
        #[source]
        source: kube::Error,
    },
    /// An object the operator cannot act on.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The metric label of this error.
    pub fn category(&self) -> Category {
        match self {
            Error::Api { .. } | Error::Timeout { .. } => Category::Api,
            Error::Conflict { .. } => Category::Conflict,
            Error::InvalidObject { .. } => Category::InvalidObject,
            Error::Internal(_) => Category::Internal,
        }
    }

    /// Classifies a failed call by the API server's answer.
    pub fn from_call(call: Call, source: kube::Error) -> Self {
        match &source {
            kube::Error::Api(s) if s.code == 409 => Error::Conflict { call, source },
            kube::Error::Api(s) if matches!(s.code, 400 | 413 | 422) => Error::InvalidObject { call, source },
            _ => Error::Api { call, source },
        }
    }
}

/// Runs the API call `fut` with the deadline `after`: an answer that does not come in time is
/// abandoned.
pub async fn within<T>(
    call: Call,
    after: Duration,
    fut: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(after, fut).await {
        Ok(result) => result.map_err(|e| Error::from_call(call, e)),
        Err(_) => Err(Error::Timeout { call, after }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status { code, ..Default::default() }))
    }

    #[test]
    fn answers_map_to_categories() {
        let category = |code| Error::from_call(Call::ApplyStatus, api(code)).category();
        assert_eq!(category(409), Category::Conflict);
        for code in [400, 413, 422] {
            assert_eq!(category(code), Category::InvalidObject);
        }
        for code in [403, 429, 500, 503] {
            assert_eq!(category(code), Category::Api);
        }
        let timeout = Error::Timeout { call: Call::ApplyObject, after: Duration::from_secs(1) };
        assert_eq!(timeout.category(), Category::Api);
        assert_eq!(Error::Internal("x".into()).category(), Category::Internal);
        let labels: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(labels, ["api", "conflict", "invalid-object", "internal"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_past_its_deadline_is_abandoned() {
        let hung = std::future::pending::<Result<(), kube::Error>>();
        let err = within(Call::ApplyStatus, Duration::from_secs(3), hung).await.unwrap_err();
        assert!(matches!(err, Error::Timeout { call: Call::ApplyStatus, .. }), "{err}");
    }
}
