//! The service's errors and their gRPC codes.

use crm_platform::{ErrorCode, FieldViolations, ServiceError};

/// Everything that can go wrong in customer-profile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request or record is unusable.
    #[error("{0}")]
    Invalid(FieldViolations),
    /// No such customer, source record or suspect pair.
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with the current state (e.g. a suspect pair already resolved).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The customer exists but lies outside the caller's data scope.
    #[error("{0} is outside your data scope")]
    OutOfScope(String),
    /// A concurrent change won; retry.
    #[error("concurrent change, retry: {0}")]
    Conflict(String),
    /// A part of this service is shutting down.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Stored data does not decode (a bug or a manual edit).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

impl ServiceError for Error {
    fn code(&self) -> ErrorCode {
        match self {
            Error::Invalid(_) => ErrorCode::InvalidArgument,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::FailedPrecondition(_) => ErrorCode::FailedPrecondition,
            Error::OutOfScope(_) => ErrorCode::PermissionDenied,
            Error::Conflict(_) => ErrorCode::Aborted,
            Error::Unavailable(_) => ErrorCode::Unavailable,
            Error::Database(e) => crm_platform::sqlstate::error_code(e),
            Error::Corrupt(_) => ErrorCode::Internal,
        }
    }

    fn field_violations(&self) -> Option<&FieldViolations> {
        match self {
            Error::Invalid(v) => Some(v),
            _ => None,
        }
    }
}

impl From<crm_platform::file_load::FileError> for Error {
    fn from(e: crm_platform::file_load::FileError) -> Self {
        match e {
            crm_platform::file_load::FileError::Refused(reason) => Error::FailedPrecondition(reason),
            crm_platform::file_load::FileError::Database(e) => Error::Database(e),
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        crm_platform::to_status(&e)
    }
}

/// Shorthand.
pub type Result<T, E = Error> = std::result::Result<T, E>;
