//! The Python engine of on-demand views: Feast's transformation service protocol
//! (`feast.serving.TransformationService`: the UDF's input frame in, its output frame out, both
//! Arrow IPC files), at a configured address (`larder.on_demand.transformation_service`, e.g.
//! `feast serve_transformations`) or served by Larder's worker (`server/python/
//! transform_worker.py`, pandas and python modes) started on first use with the configured
//! Python (`larder.on_demand.python`). Every call has the configured timeout.

use std::{path::PathBuf, sync::Arc, time::Duration};

use larder_offline::arrow::array::RecordBatch;
use larder_protos::feast::serving::{
    TransformFeaturesRequest, ValueType as ArrowValue,
    transformation_service_client::TransformationServiceClient, value_type::Value as Payload,
};
use larder_registry::config::RepoConfig;
use tokio::{io::AsyncBufReadExt, sync::OnceCell};
use tonic::transport::Channel;

use crate::error::{ErrorCode, ServiceError};

const WORKER: &str = include_str!("../../python/transform_worker.py");

/// How long the worker may take to start (importing the Feast SDK takes seconds).
const START_TIMEOUT: Duration = Duration::from_secs(120);

enum Target {
    Address(String),
    Worker { python: String, config: PathBuf },
}

/// A started worker: killed when the engine is dropped.
struct Worker {
    _child: tokio::process::Child,
    _script: tempfile::TempPath,
}

pub struct PythonEngine {
    target: Target,
    project: String,
    timeout: Duration,
    connected: OnceCell<Result<(Channel, Option<Worker>), String>>,
}

impl std::fmt::Debug for PythonEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonEngine")
            .field("project", &self.project)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn unavailable(message: impl Into<String>) -> ServiceError {
    ServiceError::new(ErrorCode::Unavailable, message)
}

impl PythonEngine {
    /// The engine `config` configures, if any.
    pub fn from_config(config: &RepoConfig) -> Option<Arc<Self>> {
        let od = &config.larder.on_demand;
        let target = match (&od.transformation_service, &od.python) {
            (Some(addr), _) => Target::Address(addr.clone()),
            (None, Some(python)) => Target::Worker {
                python: python.clone(),
                config: config.config_path.clone(),
            },
            (None, None) => return None,
        };
        Some(Arc::new(Self {
            target,
            project: config.project.as_str().to_owned(),
            timeout: Duration::from_secs_f64(od.timeout_seconds),
            connected: OnceCell::new(),
        }))
    }

    async fn connect(&self) -> Result<(Channel, Option<Worker>), String> {
        let (address, worker) = match &self.target {
            Target::Address(a) => (a.clone(), None),
            Target::Worker { python, config } => {
                let (port, worker) = start_worker(python, config).await?;
                (format!("127.0.0.1:{port}"), Some(worker))
            }
        };
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| format!("bad transformation service address {address}: {e}"))?
            .connect_timeout(Duration::from_secs(10));
        let channel = endpoint.connect_lazy();
        Ok((channel, worker))
    }

    /// Runs view `view`'s UDF over `input` (its input frame); the output frame's columns are
    /// named `<view>__<feature>`.
    pub async fn transform(
        &self,
        view: &str,
        input: &RecordBatch,
    ) -> Result<RecordBatch, ServiceError> {
        let connected = self.connected.get_or_init(|| self.connect()).await;
        let channel = match connected {
            Ok((c, _)) => c.clone(),
            Err(e) => return Err(unavailable(format!("the Python engine did not start: {e}"))),
        };
        let mut buf = Vec::new();
        {
            let mut w = arrow_ipc::writer::FileWriter::try_new(&mut buf, &input.schema())
                .map_err(ServiceError::internal)?;
            w.write(input).map_err(ServiceError::internal)?;
            w.finish().map_err(ServiceError::internal)?;
        }
        let mut client = TransformationServiceClient::new(channel)
            .max_decoding_message_size(1 << 30)
            .max_encoding_message_size(1 << 30);
        let mut req = tonic::Request::new(TransformFeaturesRequest {
            on_demand_feature_view_name: view.to_owned(),
            project: self.project.clone(),
            transformation_input: Some(ArrowValue {
                value: Some(Payload::ArrowValue(buf)),
            }),
        });
        req.set_timeout(self.timeout);
        let answer = tokio::time::timeout(self.timeout, client.transform_features(req))
            .await
            .map_err(|_| {
                ServiceError::new(
                    ErrorCode::Unavailable,
                    format!(
                        "on demand feature view {view}: the Python engine did not answer within {:?}",
                        self.timeout
                    ),
                )
            })?
            .map_err(|s| match s.code() {
                tonic::Code::InvalidArgument | tonic::Code::NotFound | tonic::Code::Unknown => {
                    ServiceError::bad_request(format!(
                        "on demand feature view {view}: the UDF failed: {}",
                        s.message()
                    ))
                }
                _ => unavailable(format!(
                    "on demand feature view {view}: the Python engine failed: {}",
                    s.message()
                )),
            })?
            .into_inner();
        let Some(ArrowValue {
            value: Some(Payload::ArrowValue(bytes)),
        }) = answer.transformation_output
        else {
            return Err(unavailable(format!(
                "on demand feature view {view}: the Python engine answered no table"
            )));
        };
        let reader = arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None)
            .map_err(|e| unavailable(format!("the Python engine's answer: {e}")))?;
        let schema = reader.schema();
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| unavailable(format!("the Python engine's answer: {e}")))?;
        larder_offline::arrow::compute::concat_batches(&schema, &batches)
            .map_err(|e| unavailable(format!("the Python engine's answer: {e}")))
    }
}

/// Starts the worker with `python` over the repo `config`; returns the port it listens on.
async fn start_worker(python: &str, config: &std::path::Path) -> Result<(u16, Worker), String> {
    let mut script = tempfile::Builder::new()
        .prefix("larder-transform-worker")
        .suffix(".py")
        .tempfile()
        .map_err(|e| format!("writing the worker script: {e}"))?;
    std::io::Write::write_all(&mut script, WORKER.as_bytes())
        .map_err(|e| format!("writing the worker script: {e}"))?;
    let script = script.into_temp_path();
    let mut child = tokio::process::Command::new(python)
        .arg(&script)
        .arg(config)
        .env("PYTHONWARNINGS", "ignore")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting {python}: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(START_TIMEOUT, lines.next_line())
        .await
        .map_err(|_| format!("{python} did not start the worker within {START_TIMEOUT:?}"))?
        .map_err(|e| format!("reading the worker: {e}"))?;
    let port = first
        .as_deref()
        .and_then(|l| l.strip_prefix("PORT "))
        .and_then(|p| p.trim().parse::<u16>().ok())
        .ok_or_else(|| {
            format!(
                "the worker exited or printed no port (is the Feast SDK installed for {python}?)"
            )
        })?;
    tracing::info!(python, port, "python engine worker started");
    Ok((
        port,
        Worker {
            _child: child,
            _script: script,
        },
    ))
}
