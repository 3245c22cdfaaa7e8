//! Per-RPC metrics of the gRPC servers (`serve-offline`, `serve-registry`), served on their own
//! port at `GET /metrics` (Prometheus text): `larder_grpc_requests_total{server, method, code}`
//! and `larder_grpc_request_duration_seconds{server, method}`, measured to the end of the
//! response — the gRPC status comes from the trailers (or the headers of a trailers-only
//! error), so a streamed call that fails midway is counted with its code, and one the client
//! abandons as `cancelled`.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use axum::{body::Body, extract::Request, middleware::Next, response::Response};
use http_body::{Frame, SizeHint};

/// What one call records when its response ends.
struct Call {
    server: &'static str,
    method: String,
    started: Instant,
}

impl Call {
    fn record(self, code: &str) {
        metrics::counter!("larder_grpc_requests_total",
            "server" => self.server, "method" => self.method.clone(), "code" => code.to_owned())
        .increment(1);
        metrics::histogram!("larder_grpc_request_duration_seconds",
            "server" => self.server, "method" => self.method)
        .record(self.started.elapsed().as_secs_f64());
    }
}

/// The gRPC status code's name, as Prometheus labels usually carry it.
fn code_name(code: &[u8]) -> &'static str {
    match code {
        b"0" => "OK",
        b"1" => "CANCELLED",
        b"2" => "UNKNOWN",
        b"3" => "INVALID_ARGUMENT",
        b"4" => "DEADLINE_EXCEEDED",
        b"5" => "NOT_FOUND",
        b"6" => "ALREADY_EXISTS",
        b"7" => "PERMISSION_DENIED",
        b"8" => "RESOURCE_EXHAUSTED",
        b"9" => "FAILED_PRECONDITION",
        b"10" => "ABORTED",
        b"11" => "OUT_OF_RANGE",
        b"12" => "UNIMPLEMENTED",
        b"13" => "INTERNAL",
        b"14" => "UNAVAILABLE",
        b"15" => "DATA_LOSS",
        b"16" => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

/// A response body that records its call when the trailers (or the end) come.
struct Recorded {
    inner: Body,
    call: Option<Call>,
}

impl http_body::Body for Recorded {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(|t| t.get("grpc-status"))
                    && let Some(call) = self.call.take()
                {
                    call.record(code_name(code.as_bytes()));
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(call) = self.call.take() {
                    call.record("INTERNAL");
                }
            }
            Poll::Ready(None) => {
                if let Some(call) = self.call.take() {
                    call.record("UNKNOWN");
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Recorded {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            call.record("CANCELLED");
        }
    }
}

/// The middleware: gRPC requests are measured, anything else passes as it is.
pub async fn measure(server: &'static str, req: Request, next: Next) -> Response {
    let grpc = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if !grpc {
        return next.run(req).await;
    }
    let method = req
        .uri()
        .path()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let call = Call {
        server,
        method,
        started: Instant::now(),
    };
    let response = next.run(req).await;
    // A trailers-only response (an error before any message) has its status in the headers.
    if let Some(code) = response.headers().get("grpc-status") {
        call.record(code_name(code.as_bytes()));
        return response;
    }
    let (parts, body) = response.into_parts();
    Response::from_parts(
        parts,
        Body::new(Recorded {
            inner: body,
            call: Some(call),
        }),
    )
}
