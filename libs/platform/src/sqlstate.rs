//! What a database error means, by its SQLSTATE: the named classes services act on,
//! the kit error code each one answers with, and whether running the transaction again
//! may succeed. The only place SQLSTATE codes are spelled out.

use crate::error::ErrorCode;

/// A database failure, named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFailure {
    /// `23505`: a row with the same unique key exists.
    UniqueViolation,
    /// `23503`: a referenced row does not exist (or a referencing one still does).
    ForeignKeyViolation,
    /// `23514`: a CHECK constraint refused the row.
    CheckViolation,
    /// `23502`: a required column was NULL.
    NotNullViolation,
    /// `40001`: a concurrent transaction won under serializable isolation.
    SerializationFailure,
    /// `40P01`: PostgreSQL broke a deadlock by aborting this transaction.
    DeadlockDetected,
    /// `42P04`: CREATE DATABASE found the database already there.
    DuplicateDatabase,
    /// Class `22` (data exception: a NUL or invalid byte sequence, a value out of range,
    /// a string too long for its column) and class `54` (program limit exceeded: an
    /// index row too large): the input was unusable. Validation at the edge should have
    /// refused it; reaching the database is a gap in that validation.
    BadValue,
    /// No connection could be had or it broke (pool timed out or closed, I/O, TLS).
    Unreachable,
    /// Anything else: a bug or an unexpected state.
    Other,
}

/// SQLSTATE of each named failure (the class-wide ones are matched by prefix).
const CODES: &[(&str, DbFailure)] = &[
    ("23505", DbFailure::UniqueViolation),
    ("23503", DbFailure::ForeignKeyViolation),
    ("23514", DbFailure::CheckViolation),
    ("23502", DbFailure::NotNullViolation),
    ("40001", DbFailure::SerializationFailure),
    ("40P01", DbFailure::DeadlockDetected),
    ("42P04", DbFailure::DuplicateDatabase),
];

impl DbFailure {
    /// Names the failure of `error`.
    pub fn of(error: &sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                DbFailure::Unreachable
            }
            sqlx::Error::Database(e) => e.code().as_deref().map(Self::of_sqlstate).unwrap_or(DbFailure::Other),
            _ => DbFailure::Other,
        }
    }

    /// Names the failure of a SQLSTATE code.
    pub fn of_sqlstate(code: &str) -> Self {
        if let Some((_, failure)) = CODES.iter().find(|(c, _)| *c == code) {
            return *failure;
        }
        if code.starts_with("22") || code.starts_with("54") { DbFailure::BadValue } else { DbFailure::Other }
    }

    /// The kit error code a caller is answered with.
    pub fn code(self) -> ErrorCode {
        match self {
            DbFailure::UniqueViolation => ErrorCode::AlreadyExists,
            DbFailure::SerializationFailure | DbFailure::DeadlockDetected => ErrorCode::Aborted,
            DbFailure::Unreachable => ErrorCode::Unavailable,
            // The database's message names tables and indexes: not for callers. Input
            // that reaches the database unusable is a gap in validation, answered as
            // any other bug.
            DbFailure::BadValue
            | DbFailure::ForeignKeyViolation
            | DbFailure::CheckViolation
            | DbFailure::NotNullViolation
            | DbFailure::DuplicateDatabase
            | DbFailure::Other => ErrorCode::Internal,
        }
    }

    /// Whether running the whole transaction again may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, DbFailure::SerializationFailure | DbFailure::DeadlockDetected | DbFailure::Unreachable)
    }
}

/// The kit error code of a database error (the one mapping every service uses).
pub fn error_code(error: &sqlx::Error) -> ErrorCode {
    DbFailure::of(error).code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sqlstate_is_named_answered_and_retried_as_the_table_says() {
        use DbFailure::*;
        let cases: &[(&str, DbFailure, ErrorCode, bool)] = &[
            ("23505", UniqueViolation, ErrorCode::AlreadyExists, false),
            ("23503", ForeignKeyViolation, ErrorCode::Internal, false),
            ("23514", CheckViolation, ErrorCode::Internal, false),
            ("23502", NotNullViolation, ErrorCode::Internal, false),
            ("40001", SerializationFailure, ErrorCode::Aborted, true),
            ("40P01", DeadlockDetected, ErrorCode::Aborted, true),
            ("42P04", DuplicateDatabase, ErrorCode::Internal, false),
            ("22021", BadValue, ErrorCode::Internal, false),
            ("22001", BadValue, ErrorCode::Internal, false),
            ("54000", BadValue, ErrorCode::Internal, false),
            ("42P01", Other, ErrorCode::Internal, false),
            ("XX000", Other, ErrorCode::Internal, false),
        ];
        for (sqlstate, failure, code, retry) in cases {
            let got = DbFailure::of_sqlstate(sqlstate);
            assert_eq!(got, *failure, "{sqlstate}");
            assert_eq!(got.code(), *code, "{sqlstate}");
            assert_eq!(got.is_retryable(), *retry, "{sqlstate}");
        }
    }

    #[test]
    fn a_lost_connection_is_unavailable_and_may_be_retried() {
        for error in
            [sqlx::Error::PoolTimedOut, sqlx::Error::PoolClosed, sqlx::Error::Io(std::io::Error::other("reset"))]
        {
            assert_eq!(DbFailure::of(&error), DbFailure::Unreachable);
            assert_eq!(error_code(&error), ErrorCode::Unavailable);
            assert!(DbFailure::of(&error).is_retryable());
        }
        assert_eq!(DbFailure::of(&sqlx::Error::RowNotFound), DbFailure::Other);
    }
}
