//! The service's errors and their gRPC codes.

use crm_platform::{ErrorCode, FieldViolations, ServiceError};

/// Everything that can go wrong in analytics.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is unusable.
    #[error("{0}")]
    Invalid(FieldViolations),
    /// No such customer, rule or month.
    #[error("not found: {0}")]
    NotFound(String),
    /// The request conflicts with what is stored (a rule version that exists).
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The request does not suit what is stored (a manual setting of a rule tag).
    #[error("failed precondition: {0}")]
    Precondition(String),
    /// The customer lies outside the caller's data scope.
    #[error("outside your data scope: {0}")]
    OutOfScope(String),
    /// Stored data that cannot be read back (a bug or a manual edit).
    #[error("stored data is unusable: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl ServiceError for Error {
    fn code(&self) -> ErrorCode {
        match self {
            Error::Invalid(_) => ErrorCode::InvalidArgument,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::AlreadyExists(_) => ErrorCode::AlreadyExists,
            Error::Precondition(_) => ErrorCode::FailedPrecondition,
            Error::OutOfScope(_) => ErrorCode::PermissionDenied,
            Error::Corrupt(_) => ErrorCode::Internal,
            Error::Database(e) => crm_platform::sqlstate::error_code(e),
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
            crm_platform::file_load::FileError::Refused(reason) => Error::Precondition(reason),
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
