//! The one error → HTTP status / gRPC code table, and Feast's error body shape.

/// What kind of failure a service error is; the single source of transport statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    /// The request body is not the expected document (Feast answers 422 for these).
    Unprocessable,
    NotFound,
    Conflict,
    NotImplemented,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::Unprocessable => 422,
            ErrorCode::Internal => 500,
            ErrorCode::NotImplemented => 501,
            ErrorCode::Unavailable => 503,
        }
    }

    pub fn grpc_code(self) -> tonic::Code {
        match self {
            ErrorCode::BadRequest | ErrorCode::Unprocessable => tonic::Code::InvalidArgument,
            ErrorCode::NotFound => tonic::Code::NotFound,
            ErrorCode::Conflict => tonic::Code::FailedPrecondition,
            ErrorCode::NotImplemented => tonic::Code::Unimplemented,
            ErrorCode::Unavailable => tonic::Code::Unavailable,
            ErrorCode::Internal => tonic::Code::Internal,
        }
    }
}

/// An error a service returns to a client.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceError {
    pub code: ErrorCode,
    /// The `feast.errors` class a Feast client should re-raise, when one fits.
    pub feast_class: Option<&'static str>,
    pub message: String,
}

impl ServiceError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            feast_class: None,
            message: message.into(),
        }
    }

    pub fn feast(code: ErrorCode, class: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            feast_class: Some(class),
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// An internal failure: logged once here with its detail, masked for the client.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(ErrorCode::Internal, "internal server error")
    }

    /// Feast's body: for a Feast error class, a JSON string holding
    /// `{"module": "feast.errors", "class": ..., "message": ...}` (Python separators), which
    /// the Feast SDK decodes twice and re-raises; otherwise a JSON string of the message.
    pub fn feast_body(&self) -> String {
        let inner = match self.feast_class {
            Some(class) => format!(
                "{{\"module\": \"feast.errors\", \"class\": {}, \"message\": {}}}",
                py_json_str(class),
                py_json_str(&self.message)
            ),
            None => self.message.clone(),
        };
        serde_json::to_string(&inner).expect("a string serializes")
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A JSON string literal as Python's `json.dumps` writes it (non-ASCII escaped).
fn py_json_str(s: &str) -> String {
    larder_registry::dump::ascii_escaped(&serde_json::to_string(s).expect("a string serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feast_error_body_is_double_encoded() {
        let e = ServiceError::feast(
            ErrorCode::NotFound,
            "FeatureViewNotFoundException",
            "Feature view nope does not exist in project demo",
        );
        assert_eq!(
            e.feast_body(),
            r#""{\"module\": \"feast.errors\", \"class\": \"FeatureViewNotFoundException\", \"message\": \"Feature view nope does not exist in project demo\"}""#
        );
        assert_eq!(ServiceError::bad_request("bad é").feast_body(), "\"bad é\"");
        let e = ServiceError::feast(ErrorCode::NotFound, "FeatureViewNotFoundException", "vue é");
        assert!(
            e.feast_body().contains(r#"\"message\": \"vue \\u00e9\""#),
            "{}",
            e.feast_body()
        );
        assert_eq!(ErrorCode::NotFound.http_status(), 404);
        assert_eq!(
            ErrorCode::Conflict.grpc_code(),
            tonic::Code::FailedPrecondition
        );
    }
}
