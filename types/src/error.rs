//! The kinds of failure every crate's errors map to, and the one table from kind to HTTP
//! status and gRPC code. Transport-free: the gRPC code is its number (`tonic::Code::from`).

/// What kind of failure an error is; the single source of transport statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is wrong (a value of the wrong type, a missing column).
    BadRequest,
    /// The request body is not the expected document (Feast answers 422 for these).
    Unprocessable,
    /// The request names something that does not exist.
    NotFound,
    /// The request conflicts with the current state (a disabled view, a job running, a stale
    /// registry revision).
    Conflict,
    /// The request carries no valid credentials.
    Unauthenticated,
    /// The credentials do not allow the request.
    Forbidden,
    /// The request asks for something this server does not do (yet).
    NotImplemented,
    /// A store or peer cannot be reached or cannot answer now; retrying may work.
    Unavailable,
    /// A fault of the server itself: logged, never shown to clients in detail.
    Internal,
}

/// gRPC status codes (grpc/grpc `doc/statuscodes.md`).
pub mod grpc {
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const NOT_FOUND: i32 = 5;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const FAILED_PRECONDITION: i32 = 9;
    pub const UNIMPLEMENTED: i32 = 12;
    pub const INTERNAL: i32 = 13;
    pub const UNAVAILABLE: i32 = 14;
    pub const UNAUTHENTICATED: i32 = 16;
}

impl ErrorCode {
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::Unprocessable => 422,
            ErrorCode::Internal => 500,
            ErrorCode::NotImplemented => 501,
            ErrorCode::Unavailable => 503,
        }
    }

    /// The gRPC status code's number.
    pub fn grpc_code(self) -> i32 {
        match self {
            ErrorCode::BadRequest | ErrorCode::Unprocessable => grpc::INVALID_ARGUMENT,
            ErrorCode::NotFound => grpc::NOT_FOUND,
            ErrorCode::Conflict => grpc::FAILED_PRECONDITION,
            ErrorCode::Unauthenticated => grpc::UNAUTHENTICATED,
            ErrorCode::Forbidden => grpc::PERMISSION_DENIED,
            ErrorCode::NotImplemented => grpc::UNIMPLEMENTED,
            ErrorCode::Unavailable => grpc::UNAVAILABLE,
            ErrorCode::Internal => grpc::INTERNAL,
        }
    }
}

/// An error that knows its kind: every crate's error enum implements this, and the service
/// layer turns any of them into a client answer through it.
pub trait Coded {
    fn code(&self) -> ErrorCode;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_status_and_a_grpc_code() {
        let all = [
            ErrorCode::BadRequest,
            ErrorCode::Unprocessable,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::Unauthenticated,
            ErrorCode::Forbidden,
            ErrorCode::NotImplemented,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
        ];
        for c in all {
            let s = c.http_status();
            assert!((400..600).contains(&s), "{c:?}");
            assert!((1..=16).contains(&c.grpc_code()), "{c:?}");
            // Client mistakes are 4xx, server faults 5xx.
            let client = !matches!(
                c,
                ErrorCode::NotImplemented | ErrorCode::Unavailable | ErrorCode::Internal
            );
            assert_eq!(s < 500, client, "{c:?}");
        }
        assert_eq!(ErrorCode::Conflict.grpc_code(), grpc::FAILED_PRECONDITION);
    }
}
