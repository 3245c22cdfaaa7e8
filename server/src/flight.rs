//! Feast's Arrow Flight offline server (spec §7), as the Feast SDK's `offline_store: remote`
//! client calls it: a thin adapter that decodes the JSON command and the uploaded table, calls
//! one method of [`OfflineServer`], and encodes the answer. Reads come by `DoExchange`; the
//! legacy flow (`DoPut` the table under its descriptor, `GetFlightInfo`, `DoGet` the ticket)
//! is served too. Errors carry Feast's error JSON after `Flight error: `, which the SDK finds
//! and re-raises as the Feast exception.

use std::{collections::HashMap, pin::Pin, sync::Arc};

use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
    decode::FlightRecordBatchStream, encode::FlightDataEncoderBuilder, error::FlightError,
    flight_descriptor::DescriptorType, flight_service_server::FlightService,
};
use futures::{Stream, StreamExt, TryStreamExt};
use larder_offline::arrow::{array::RecordBatch, datatypes::SchemaRef};
use tonic::{Request, Response, Status, Streaming};

use crate::{error::ServiceError, service::offline_server::OfflineServer};

type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The largest gRPC message accepted: the SDK sends a whole entity table as one message.
pub const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// A service error as the SDK reads it: `Flight error: {"module": ..., "class": ..., ...}`.
pub fn status(e: &ServiceError) -> Status {
    let class = e.feast_class.unwrap_or("FeastError");
    let e = ServiceError {
        feast_class: Some(class),
        ..e.clone()
    };
    Status::new(
        tonic::Code::from(e.code.grpc_code()),
        format!("Flight error: {}", e.grpc_message()),
    )
}

fn bad_command(message: impl std::fmt::Display) -> Status {
    status(&ServiceError::bad_request(format!(
        "malformed Flight command: {message}"
    )))
}

pub struct OfflineFlight {
    pub server: Arc<OfflineServer>,
    /// Runs retrievals on the process's multi-threaded runtime (the endpoint's thread is
    /// single-threaded; a join uses every core).
    pub runtime: tokio::runtime::Handle,
    /// Legacy flow: tables put under a read command, until their `DoGet`.
    pending: std::sync::Mutex<HashMap<Vec<u8>, Vec<RecordBatch>>>,
    /// This server's own location, for the legacy flow's endpoints.
    pub location: String,
}

impl OfflineFlight {
    pub fn new(
        server: Arc<OfflineServer>,
        runtime: tokio::runtime::Handle,
        location: String,
    ) -> Self {
        Self {
            server,
            runtime,
            pending: Default::default(),
            location,
        }
    }

    /// Decodes an upload: its descriptor's command (from the first message) and its batches.
    async fn upload(stream: Streaming<FlightData>) -> Result<(Vec<u8>, Vec<RecordBatch>), Status> {
        let mut stream = stream;
        let first = stream
            .message()
            .await?
            .ok_or_else(|| bad_command("the stream is empty"))?;
        let descriptor = first
            .flight_descriptor
            .clone()
            .ok_or_else(|| bad_command("the first message has no descriptor"))?;
        if descriptor.r#type != DescriptorType::Cmd as i32 {
            return Err(bad_command("the descriptor is not a CMD"));
        }
        // pyarrow's DoExchange sends the descriptor alone first (no IPC message in it).
        let all = futures::stream::once(async { Ok(first) })
            .chain(stream)
            .try_filter(|m| std::future::ready(!m.data_header.is_empty()))
            .map_err(FlightError::from);
        let batches: Vec<RecordBatch> = FlightRecordBatchStream::new_from_flight_data(all)
            .try_collect()
            .await
            .map_err(|e| bad_command(format!("the uploaded table: {e}")))?;
        Ok((descriptor.cmd.to_vec(), batches))
    }

    /// Runs a read command on the multi-threaded runtime.
    async fn read(
        &self,
        cmd: Vec<u8>,
        batches: Vec<RecordBatch>,
    ) -> Result<(SchemaRef, Vec<RecordBatch>), Status> {
        let server = self.server.clone();
        self.runtime
            .spawn(async move { server.read(&cmd, batches).await })
            .await
            .map_err(|e| status(&ServiceError::internal(e)))?
            .map_err(|e| status(&e))
    }

    fn encode(schema: SchemaRef, batches: Vec<RecordBatch>) -> Boxed<FlightData> {
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::iter(batches.into_iter().map(Ok)))
            .map_err(|e| status(&ServiceError::internal(e)));
        Box::pin(stream)
    }
}

/// The legacy ticket: Python's `repr` of the server's key `(2, b'<command>', ())`.
fn ticket_of(cmd: &[u8]) -> Vec<u8> {
    let mut s = String::from("(2, b'");
    for &b in cmd {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'\'' => s.push_str("\\'"),
            0x20..=0x7e => s.push(b as char),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push_str("', ())");
    s.into_bytes()
}

#[tonic::async_trait]
impl FlightService for OfflineFlight {
    type HandshakeStream = Boxed<HandshakeResponse>;
    type ListFlightsStream = Boxed<FlightInfo>;
    type DoGetStream = Boxed<FlightData>;
    type DoPutStream = Boxed<PutResult>;
    type DoActionStream = Boxed<arrow_flight::Result>;
    type ListActionsStream = Boxed<ActionType>;
    type DoExchangeStream = Boxed<FlightData>;

    async fn handshake(
        &self,
        _: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(Status::unimplemented(
            "no handshake: the offline server needs none",
        ))
    }

    async fn list_flights(
        &self,
        _: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        let pending: Vec<Vec<u8>> = self
            .pending
            .lock()
            .expect("not poisoned")
            .keys()
            .cloned()
            .collect();
        let infos: Vec<Result<FlightInfo, Status>> =
            pending.into_iter().map(|cmd| Ok(self.info(&cmd))).collect();
        Ok(Response::new(Box::pin(futures::stream::iter(infos))))
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let cmd = request.into_inner().cmd.to_vec();
        if !self
            .pending
            .lock()
            .expect("not poisoned")
            .contains_key(&cmd)
        {
            return Err(Status::not_found("no table was put under this descriptor"));
        }
        Ok(Response::new(self.info(&cmd)))
    }

    async fn poll_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented(
            "poll_flight_info is not part of Feast's protocol",
        ))
    }

    async fn get_schema(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        Err(Status::unimplemented(
            "get_schema is not part of Feast's protocol",
        ))
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let ticket = request.into_inner().ticket.to_vec();
        let found = {
            let mut pending = self.pending.lock().expect("not poisoned");
            let cmd = pending.keys().find(|c| ticket_of(c) == ticket).cloned();
            cmd.and_then(|c| pending.remove(&c).map(|b| (c, b)))
        };
        let (cmd, batches) = found.ok_or_else(|| Status::not_found("unknown ticket"))?;
        let (schema, out) = self.read(cmd, batches).await?;
        Ok(Response::new(Self::encode(schema, out)))
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        let (cmd, batches) = Self::upload(request.into_inner()).await?;
        if OfflineServer::is_read(&cmd).map_err(|e| status(&e))? {
            // Legacy reads: kept for the GetFlightInfo / DoGet that follow.
            self.pending
                .lock()
                .expect("not poisoned")
                .insert(cmd, batches);
        } else {
            let server = self.server.clone();
            self.runtime
                .spawn(async move { server.write(&cmd, batches).await })
                .await
                .map_err(|e| status(&ServiceError::internal(e)))?
                .map_err(|e| status(&e))?;
        }
        Ok(Response::new(Box::pin(futures::stream::empty())))
    }

    async fn do_action(
        &self,
        _: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        Err(Status::unimplemented(
            "DoAction is not implemented (as in Feast's server)",
        ))
    }

    async fn list_actions(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        let actions = ["offline_write_batch", "write_logged_features", "persist"].map(|a| {
            Ok(ActionType {
                r#type: a.into(),
                description: String::new(),
            })
        });
        Ok(Response::new(Box::pin(futures::stream::iter(actions))))
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        let (cmd, batches) = Self::upload(request.into_inner()).await?;
        let (schema, out) = self.read(cmd, batches).await?;
        Ok(Response::new(Self::encode(schema, out)))
    }
}

impl OfflineFlight {
    fn info(&self, cmd: &[u8]) -> FlightInfo {
        FlightInfo {
            schema: Default::default(),
            flight_descriptor: Some(FlightDescriptor::new_cmd(cmd.to_vec())),
            endpoint: vec![FlightEndpoint {
                ticket: Some(Ticket::new(ticket_of(cmd))),
                location: vec![arrow_flight::Location {
                    uri: self.location.clone(),
                }],
                expiration_time: None,
                app_metadata: Default::default(),
            }],
            total_records: -1,
            total_bytes: -1,
            ordered: false,
            app_metadata: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tickets_are_python_reprs_of_the_key() {
        assert_eq!(
            super::ticket_of(br#"{"api": "x", "s": "it's"}"#),
            br#"(2, b'{"api": "x", "s": "it\'s"}', ())"#.to_vec()
        );
    }

    #[test]
    fn errors_carry_feast_json_after_flight_error() {
        let e = crate::error::ServiceError::bad_request("no column x");
        let s = super::status(&e);
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            s.message(),
            r#"Flight error: {"module": "feast.errors", "class": "FeastError", "message": "no column x"}"#
        );
    }
}
