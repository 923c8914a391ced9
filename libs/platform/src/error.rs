//! Errors of the platform kit, the small set of error codes every service maps its own
//! errors onto, and the single place where a code becomes a `tonic::Status`.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// What kind of failure an error is, independent of the crate it comes from.
///
/// Each service's error enum says which code each of its variants has; [`to_status`]
/// then turns it into gRPC the same way everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The caller sent something unusable; retrying the same request cannot succeed.
    InvalidArgument,
    /// The addressed entity does not exist.
    NotFound,
    /// The entity the caller tried to create already exists.
    AlreadyExists,
    /// The request is valid but the system is not in a state to apply it.
    FailedPrecondition,
    /// A concurrent change won; the caller may retry the whole read-modify-write.
    Aborted,
    /// No valid credentials.
    Unauthenticated,
    /// Valid credentials without the needed permission.
    PermissionDenied,
    /// A dependency (database, broker, another service) is unreachable; retry later.
    Unavailable,
    /// A bug or an unexpected state; details go to logs, not to the caller.
    Internal,
}

impl ErrorCode {
    /// The gRPC status code of this error code.
    pub fn grpc_code(self) -> Code {
        match self {
            ErrorCode::InvalidArgument => Code::InvalidArgument,
            ErrorCode::NotFound => Code::NotFound,
            ErrorCode::AlreadyExists => Code::AlreadyExists,
            ErrorCode::FailedPrecondition => Code::FailedPrecondition,
            ErrorCode::Aborted => Code::Aborted,
            ErrorCode::Unauthenticated => Code::Unauthenticated,
            ErrorCode::PermissionDenied => Code::PermissionDenied,
            ErrorCode::Unavailable => Code::Unavailable,
            ErrorCode::Internal => Code::Internal,
        }
    }
}

/// Implemented by every crate's error enum: the one mapping from errors to gRPC.
pub trait ServiceError: std::error::Error {
    /// The code of this error.
    fn code(&self) -> ErrorCode;

    /// Field violations, for [`ErrorCode::InvalidArgument`] errors.
    fn field_violations(&self) -> Option<&FieldViolations> {
        None
    }
}

/// Converts any service error into a `tonic::Status`. Internal errors are logged with
/// their cause and answered with a generic message, so that no SQL or stack detail
/// leaks to callers.
pub fn to_status<E: ServiceError>(err: &E) -> Status {
    let code = err.code();
    if code == ErrorCode::Internal {
        tracing::error!(error = %err, source = ?std::error::Error::source(err), "internal error");
        return Status::internal("internal error");
    }
    if code == ErrorCode::Unavailable {
        tracing::warn!(error = %err, "dependency unavailable");
    }
    match err.field_violations() {
        Some(violations) if !violations.is_empty() => violations.to_status(),
        _ => Status::new(code.grpc_code(), err.to_string()),
    }
}

/// One or more problems with the fields of a request, reported all at once so that a
/// caller can fix every field in one go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldViolations {
    violations: Vec<(String, String)>,
}

impl FieldViolations {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem with `field` (a request field path such as `record.id_number`).
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) -> &mut Self {
        self.violations.push((field.into(), description.into()));
        self
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.violations.is_empty()
    }

    /// The recorded (field, description) pairs, in the order they were found.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.violations.iter().map(|(f, d)| (f.as_str(), d.as_str()))
    }

    /// Prefixes every field path, for violations found in a nested message.
    pub fn nested(mut self, prefix: &str) -> Self {
        for (field, _) in &mut self.violations {
            *field = format!("{prefix}.{field}");
        }
        self
    }

    /// Appends another set.
    pub fn extend(&mut self, other: FieldViolations) {
        self.violations.extend(other.violations);
    }

    /// The violations as the contracts carry them in a response (a rejected line or
    /// stream message, where the call itself succeeds).
    pub fn to_wire(&self) -> Vec<crm_proto::crm::common::v1::FieldViolation> {
        self.iter()
            .map(|(field, description)| crm_proto::crm::common::v1::FieldViolation {
                field: field.into(),
                description: description.into(),
            })
            .collect()
    }

    /// `Ok(())` when empty, the violations otherwise.
    pub fn into_result(self) -> Result<(), FieldViolations> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    /// INVALID_ARGUMENT with a `google.rpc.BadRequest` detail listing every violation.
    pub fn to_status(&self) -> Status {
        let mut details = ErrorDetails::new();
        for (field, description) in &self.violations {
            details.add_bad_request_violation(field.clone(), description.clone());
        }
        Status::with_error_details(Code::InvalidArgument, self.to_string(), details)
    }
}

impl std::fmt::Display for FieldViolations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid request: ")?;
        for (i, (field, description)) in self.violations.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{field}: {description}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldViolations {}

/// Errors of the platform kit itself.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The configuration could not be loaded or failed validation.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A database operation failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A broker operation failed.
    #[error("broker error: {0}")]
    Broker(#[from] lapin::Error),
    /// The broker refused (nacked) a published message.
    #[error("broker did not confirm message {0}")]
    NotConfirmed(String),
    /// The broker closed a consumer or channel.
    #[error("disconnected: {0}")]
    Disconnected(String),
    /// The gRPC transport failed.
    #[error("grpc transport error: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Setting up telemetry failed.
    #[error("telemetry error: {0}")]
    Telemetry(String),
    /// An I/O error (binding a port, reading a file).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A service's own start-up step failed (bootstrap data, keys).
    #[error("start-up failed: {0}")]
    Startup(String),
}

impl ServiceError for PlatformError {
    fn code(&self) -> ErrorCode {
        match self {
            PlatformError::Database(sqlx::Error::PoolTimedOut)
            | PlatformError::Database(sqlx::Error::Io(_))
            | PlatformError::Broker(_)
            | PlatformError::NotConfirmed(_)
            | PlatformError::Disconnected(_)
            | PlatformError::Transport(_) => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_violations_become_invalid_argument_with_a_bad_request_detail() {
        let mut v = FieldViolations::new();
        v.add("id_number", "bad check character").add("phone", "not a phone number");
        let status = v.to_status();
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let bad = details.bad_request().expect("bad request detail");
        let fields: Vec<_> = bad.field_violations.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["id_number", "phone"]);
    }

    #[test]
    fn nested_violations_carry_the_parent_path() {
        let mut v = FieldViolations::new();
        v.add("name", "empty");
        let v = v.nested("record");
        assert_eq!(v.iter().next(), Some(("record.name", "empty")));
    }

    #[test]
    fn every_code_maps_to_its_grpc_code() {
        let table = [
            (ErrorCode::InvalidArgument, Code::InvalidArgument),
            (ErrorCode::NotFound, Code::NotFound),
            (ErrorCode::AlreadyExists, Code::AlreadyExists),
            (ErrorCode::FailedPrecondition, Code::FailedPrecondition),
            (ErrorCode::Aborted, Code::Aborted),
            (ErrorCode::Unauthenticated, Code::Unauthenticated),
            (ErrorCode::PermissionDenied, Code::PermissionDenied),
            (ErrorCode::Unavailable, Code::Unavailable),
            (ErrorCode::Internal, Code::Internal),
        ];
        for (code, grpc) in table {
            assert_eq!(code.grpc_code(), grpc);
        }
    }
}
