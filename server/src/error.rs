//! The service error: an [`ErrorCode`] (the one status table, in `larder_types::error`), the
//! `feast.errors` class a Feast client should re-raise, and the message — with every crate's
//! error enum converted into it by `From` through its code, and Feast's error body shape.
//!
//! Internal errors keep their detail for logs and the CLI; what a client is shown of them
//! ([`ServiceError::client_message`]) is "internal server error", logged once there.

use std::borrow::Cow;

use larder_types::error::Coded;
pub use larder_types::error::ErrorCode;

/// An error a service returns.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceError {
    pub code: ErrorCode,
    /// The `feast.errors` class a Feast client should re-raise, when one fits.
    pub feast_class: Option<&'static str>,
    /// The whole message (for internal errors: the detail, never shown to clients).
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

    /// A fault of the server: `detail` goes to the log (once, when a client is answered) and
    /// the CLI, never to a client.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::Internal, detail.to_string())
    }

    /// The same error with `context` (what was being done) before its message.
    pub fn context(mut self, context: impl std::fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// What a client is told: the message, or for an internal error a fixed text (the detail
    /// is logged here, the one place every transport answers through).
    pub fn client_message(&self) -> Cow<'_, str> {
        if self.code == ErrorCode::Internal {
            tracing::error!(error = %self.message, "internal error");
            Cow::Borrowed("internal server error")
        } else {
            Cow::Borrowed(&self.message)
        }
    }

    /// Feast's body: for a Feast error class, a JSON string holding
    /// `{"module": "feast.errors", "class": ..., "message": ...}` (Python separators), which
    /// the Feast SDK decodes twice and re-raises; otherwise a JSON string of the message.
    pub fn feast_body(&self) -> String {
        let message = self.client_message();
        let inner = match self.feast_class {
            Some(class) => format!(
                "{{\"module\": \"feast.errors\", \"class\": {}, \"message\": {}}}",
                py_json_str(class),
                py_json_str(&message)
            ),
            None => message.into_owned(),
        };
        serde_json::to_string(&inner).expect("a string serializes")
    }

    /// The gRPC status message: Feast's error JSON for a Feast class (the SDK re-raises it),
    /// else the client message.
    pub fn grpc_message(&self) -> String {
        match self.feast_class {
            Some(_) => serde_json::from_str::<String>(&self.feast_body())
                .unwrap_or_else(|_| self.client_message().into_owned()),
            None => self.client_message().into_owned(),
        }
    }

    fn coded<E: Coded + std::fmt::Display>(e: &E) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ServiceError {}

macro_rules! from_coded {
    ($($t:ty),* $(,)?) => {
        $(impl From<$t> for ServiceError {
            fn from(e: $t) -> Self {
                Self::coded(&e)
            }
        })*
    };
}

impl From<larder_registry::error::RegistryError> for ServiceError {
    /// A project missing from the registry is Feast's `ProjectObjectNotFoundException`, which
    /// the SDK re-raises.
    fn from(e: larder_registry::error::RegistryError) -> Self {
        let mut out = Self::coded(&e);
        if matches!(
            e,
            larder_registry::error::RegistryError::ProjectNotFound { .. }
        ) {
            out.feast_class = Some("ProjectObjectNotFoundException");
        }
        out
    }
}

from_coded!(
    larder_online::store::OnlineError,
    larder_offline::OfflineError,
    larder_offline::convert::ConvertError,
    larder_offline::append::AppendError,
    larder_offline::table::TableError,
);

impl From<larder_registry::config::ConfigError> for ServiceError {
    fn from(e: larder_registry::config::ConfigError) -> Self {
        Self::internal(e)
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
    }

    #[test]
    fn internal_detail_is_kept_but_never_shown() {
        let e = ServiceError::internal("connection to 10.0.0.7:6379 reset by peer");
        assert!(
            e.to_string().contains("10.0.0.7"),
            "the CLI and logs see it"
        );
        assert_eq!(e.feast_body(), "\"internal server error\"");
        assert_eq!(e.grpc_message(), "internal server error");
        let wrong_type = larder_online::store::OnlineError::Backend {
            store: "redis 10.0.0.7:6379".into(),
            message: "WRONGTYPE".into(),
        };
        let e = ServiceError::from(wrong_type);
        assert_eq!(e.code, ErrorCode::Internal);
        assert!(!e.feast_body().contains("10.0.0.7"));
    }

    #[test]
    fn crate_errors_take_their_codes() {
        let missing = larder_registry::error::RegistryError::ProjectNotFound {
            project: "p".into(),
        };
        let missing = ServiceError::from(missing);
        assert_eq!(missing.code, ErrorCode::NotFound);
        assert!(
            missing
                .feast_body()
                .contains(r#"\"class\": \"ProjectObjectNotFoundException\""#),
            "{}",
            missing.feast_body()
        );
        let down = larder_online::store::OnlineError::Unavailable {
            store: "redis".into(),
            message: "refused".into(),
        };
        let e = ServiceError::from(down).context("feature view v");
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert!(e.message.starts_with("feature view v: "), "{}", e.message);
    }
}
