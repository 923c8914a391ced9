//! The service's errors and their gRPC codes.

use crm_platform::{ErrorCode, FieldViolations, ServiceError};

/// Everything that can go wrong in identity.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is unusable.
    #[error("{0}")]
    Invalid(FieldViolations),
    /// Credentials not accepted. One message for every reason (unknown login, wrong
    /// password, locked, disabled), so that callers cannot probe which it was.
    #[error("login failed")]
    LoginFailed,
    /// A refresh token that is unknown, spent, revoked or expired.
    #[error("refresh token is not valid")]
    BadRefreshToken,
    /// No such org, user, role or client.
    #[error("{0} not found")]
    NotFound(String),
    /// Already exists.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// Not possible in the current state (closing an org with members, changing a
    /// built-in role).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Stored secrets do not decode (wrong key-encryption key) or hashing failed.
    #[error("secret handling failed: {0}")]
    Secret(String),
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl ServiceError for Error {
    fn code(&self) -> ErrorCode {
        match self {
            Error::Invalid(_) => ErrorCode::InvalidArgument,
            Error::LoginFailed | Error::BadRefreshToken => ErrorCode::Unauthenticated,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::AlreadyExists(_) => ErrorCode::AlreadyExists,
            Error::FailedPrecondition(_) => ErrorCode::FailedPrecondition,
            Error::Database(e) => crm_platform::sqlstate::error_code(e),
            Error::Secret(_) => ErrorCode::Internal,
        }
    }

    fn field_violations(&self) -> Option<&FieldViolations> {
        match self {
            Error::Invalid(v) => Some(v),
            _ => None,
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        crm_platform::to_status(&e)
    }
}

impl From<FieldViolations> for Error {
    fn from(v: FieldViolations) -> Self {
        Error::Invalid(v)
    }
}
