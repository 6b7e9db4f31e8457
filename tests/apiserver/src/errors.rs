//! API errors and their `metav1.Status` bodies.

use serde_json::{json, Value};

/// Identifies the object an error is about (for `Status.details`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    /// API group.
    pub group: String,
    /// Plural resource (`details.kind` of NotFound/AlreadyExists/Conflict) or Kind (Invalid).
    pub kind: String,
    /// `nodes` or `supportpolicies.support.compliance.dev` (`SupportPolicy.support.compliance.dev`
    /// for Invalid), as used in messages.
    pub qualified: String,
    /// Object name.
    pub name: String,
}

/// One cause of an `Invalid` or an apply `Conflict` error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldManagerConflict`…
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// The field path (`metadata.name`, `.spec.platform`).
    pub field: String,
}

/// An error answered as a `metav1.Status` body.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApiError {
    /// 400 BadRequest.
    #[error("{0}")]
    BadRequest(String),
    /// 404 NotFound for an object.
    #[error("{} \"{}\" not found", .0.qualified, .0.name)]
    NotFound(Subject),
    /// 404 NotFound for a path the server does not serve.
    #[error("the server could not find the requested resource")]
    PathNotFound,
    /// 405 MethodNotAllowed.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// 409 AlreadyExists.
    #[error("{} \"{}\" already exists", .0.qualified, .0.name)]
    AlreadyExists(Subject),
    /// 409 Conflict on a stale resourceVersion or failed precondition.
    #[error("Operation cannot be fulfilled on {} \"{}\": {}", .subject.qualified, .subject.name, .reason)]
    Conflict {
        /// The object.
        subject: Subject,
        /// Why (`the object has been modified; …`).
        reason: String,
    },
    /// 409 Conflict of a server-side apply with fields owned by other managers.
    #[error("{}", render_apply_conflict(.causes))]
    ApplyConflict {
        /// The object.
        subject: Subject,
        /// One per conflicting field (`message`: `conflict with "m" using v1`).
        causes: Vec<Cause>,
    },
    /// 410 Expired (Gone).
    #[error("{0}")]
    Expired(String),
    /// 415 UnsupportedMediaType.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422 Invalid.
    #[error("{} \"{}\" is invalid: {}", .subject.qualified, .subject.name, render_causes(.causes))]
    Invalid {
        /// The object (`kind` is the Kind here, as in real responses).
        subject: Subject,
        /// The field errors.
        causes: Vec<Cause>,
    },
    /// 500 InternalError.
    #[error("Internal error occurred: {0}")]
    Internal(String),
    /// 504 Timeout.
    #[error("{0}")]
    Timeout(String),
    /// Any status (fault injection).
    #[error("{message}")]
    Custom {
        /// HTTP status.
        code: u16,
        /// `Status.reason`.
        reason: String,
        /// `Status.message`.
        message: String,
    },
}

fn render_apply_conflict(causes: &[Cause]) -> String {
    let n = causes.len();
    let listed: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.message, c.field)).collect();
    format!("Apply failed with {n} conflict{}: {}", if n == 1 { "" } else { "s" }, listed.join("; "))
}

fn render_causes(causes: &[Cause]) -> String {
    let parts: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
    if parts.len() == 1 {
        parts.concat()
    } else {
        format!("[{}]", parts.join(", "))
    }
}

impl ApiError {
    /// 422 Invalid with one cause about `field` of a nameless `kind` of `group` (request options,
    /// reviews).
    pub(crate) fn invalid_field(group: &str, kind: &str, field: &str, reason: &str, message: &str) -> ApiError {
        ApiError::Invalid {
            subject: Subject {
                group: group.to_owned(),
                kind: kind.to_owned(),
                qualified: format!("{kind}.{group}"),
                name: String::new(),
            },
            causes: vec![Cause { reason: reason.to_owned(), message: message.to_owned(), field: field.to_owned() }],
        }
    }

    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::NotFound(_) | ApiError::PathNotFound => 404,
            ApiError::MethodNotAllowed => 405,
            ApiError::AlreadyExists(_) | ApiError::Conflict { .. } => 409,
            ApiError::ApplyConflict { .. } => 409,
            ApiError::Expired(_) => 410,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::Invalid { .. } => 422,
            ApiError::Internal(_) => 500,
            ApiError::Timeout(_) => 504,
            ApiError::Custom { code, .. } => *code,
        }
    }

    /// `Status.reason`.
    pub fn reason(&self) -> &str {
        match self {
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::NotFound(_) | ApiError::PathNotFound => "NotFound",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::AlreadyExists(_) => "AlreadyExists",
            ApiError::Conflict { .. } | ApiError::ApplyConflict { .. } => "Conflict",
            ApiError::Expired(_) => "Expired",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::Internal(_) => "InternalError",
            ApiError::Timeout(_) => "Timeout",
            ApiError::Custom { reason, .. } => reason,
        }
    }

    /// A 422 Invalid error with a single cause.
    pub(crate) fn invalid(subject: Subject, field: &str, reason: &str, message: String) -> Self {
        ApiError::Invalid {
            subject,
            causes: vec![Cause { reason: reason.to_owned(), message, field: field.to_owned() }],
        }
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        let details = match self {
            ApiError::NotFound(s) | ApiError::AlreadyExists(s) => Some(details(s, &[])),
            ApiError::Conflict { subject, .. } => Some(details(subject, &[])),
            ApiError::ApplyConflict { subject, causes } => Some(details(subject, causes)),
            ApiError::Invalid { subject, causes } => Some(details(subject, causes)),
            _ => None,
        };
        if let Some(d) = details {
            status["details"] = d;
        }
        status
    }
}

fn details(s: &Subject, causes: &[Cause]) -> Value {
    let mut d = json!({ "name": s.name, "group": s.group, "kind": s.kind });
    if !causes.is_empty() {
        d["causes"] =
            causes.iter().map(|c| json!({ "reason": c.reason, "message": c.message, "field": c.field })).collect();
    }
    d
}
