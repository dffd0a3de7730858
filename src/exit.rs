//! pytest's exit codes and the error that ends a run with one of them.

pub const OK: i32 = 0;
pub const TESTS_FAILED: i32 = 1;
pub const INTERRUPTED: i32 = 2;
pub const INTERNAL_ERROR: i32 = 3;
pub const USAGE_ERROR: i32 = 4;
pub const NO_TESTS: i32 = 5;

/// A failure that ends the run with pytest's exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    /// A usage error (exit 4).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: USAGE_ERROR,
            message: message.into(),
        }
    }

    /// An internal error (exit 3).
    pub fn internal(message: impl std::fmt::Display) -> Failure {
        Failure {
            code: INTERNAL_ERROR,
            message: message.to_string(),
        }
    }
}
