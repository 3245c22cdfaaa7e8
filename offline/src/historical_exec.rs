//! The point-in-time join as a DataFusion [`ExecutionPlan`] node, and the
//! [`PhysicalExtensionCodec`] that serializes it — so a plan holding it can be shipped to
//! another process (a Ballista executor) and run there.
//!
//! [`PointInTimeJoinExec`] has one output partition. Its child (when it has one) is the entity
//! table: any plan, whose partitions are collected into one table (the build side); its sources
//! are read by the join itself, one task per DataFusion partition (see [`super`]). What the join
//! keeps (the entity table and each view's winning rows) is reserved from the task's memory
//! pool, so a retrieval larger than `--memory-limit` fails with DataFusion's
//! `ResourcesExhausted` error naming the join instead of exhausting the machine.
//!
//! The node encodes as JSON (the [`Retrieval`] and the mode) beside the output schema in
//! DataFusion's own protobuf form; the child is encoded by DataFusion.

use std::{any::Any, fmt, sync::Arc};

use datafusion::{
    arrow::datatypes::{Schema, SchemaRef},
    common::tree_node::TreeNodeRecursion,
    error::{DataFusionError, Result},
    execution::{
        SendableRecordBatchStream, TaskContext,
        memory_pool::{MemoryConsumer, MemoryReservation},
        session_state::SessionStateBuilder,
    },
    physical_expr::{EquivalenceProperties, PhysicalExpr},
    physical_plan::{
        DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
        PlanProperties,
        execution_plan::{Boundedness, EmissionType},
        stream::RecordBatchStreamAdapter,
    },
    prelude::SessionContext,
};
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use futures::{StreamExt, TryStreamExt};

use super::{Retrieval, entityless, entityless_schema, join_not_before, output_schema};
use crate::OfflineError;

/// The node's output stream.
pub type Stream = SendableRecordBatchStream;

/// What the node joins.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    /// The child's rows are the entity table.
    Entity,
    /// Feast's entity-less retrieval over `[start, end]` (µs since the epoch); no child.
    Entityless { start: i64, end: i64 },
}

/// A point-in-time join (spec §9.2) of an entity table with a retrieval's views. The entity
/// input is taken as it is: a caller drops pandas index columns before planning (the output
/// schema is planned from the input's).
#[derive(Debug)]
pub struct PointInTimeJoinExec {
    retrieval: Retrieval,
    mode: Mode,
    input: Option<Arc<dyn ExecutionPlan>>,
    properties: Arc<PlanProperties>,
}

impl PointInTimeJoinExec {
    /// The join of the entity table `input` produces (every partition of it) with the views.
    /// Opens each view's source to learn the output schema.
    pub async fn try_new(
        ctx: &SessionContext,
        retrieval: Retrieval,
        input: Arc<dyn ExecutionPlan>,
    ) -> Result<Self, OfflineError> {
        let schema = output_schema(ctx, &input.schema(), &retrieval).await?;
        Ok(Self::with_schema(
            retrieval,
            Mode::Entity,
            Some(input),
            Arc::new(schema),
        ))
    }

    /// Entity-less retrieval over `[start, end]` (µs).
    pub async fn entityless(
        ctx: &SessionContext,
        retrieval: Retrieval,
        start: i64,
        end: i64,
    ) -> Result<Self, OfflineError> {
        let schema = entityless_schema(ctx, &retrieval).await?;
        Ok(Self::with_schema(
            retrieval,
            Mode::Entityless { start, end },
            None,
            Arc::new(schema),
        ))
    }

    fn with_schema(
        retrieval: Retrieval,
        mode: Mode,
        input: Option<Arc<dyn ExecutionPlan>>,
        schema: SchemaRef,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Self {
            retrieval,
            mode,
            input,
            properties: Arc::new(properties),
        }
    }

    pub fn retrieval(&self) -> &Retrieval {
        &self.retrieval
    }

    pub fn mode(&self) -> &Mode {
        &self.mode
    }
}

impl DisplayAs for PointInTimeJoinExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let views: Vec<&str> = self
            .retrieval
            .views
            .iter()
            .map(|v| v.view.as_str())
            .collect();
        write!(f, "PointInTimeJoinExec: views={views:?}")?;
        if let Mode::Entityless { start, end } = self.mode {
            write!(f, ", entityless=[{start}, {end}]")?;
        }
        Ok(())
    }
}

/// An offline error carried through DataFusion's error type.
fn external(e: OfflineError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// The offline error a stream of the node failed with (DataFusion's own errors as they are).
pub fn offline_error(e: DataFusionError) -> OfflineError {
    match e {
        DataFusionError::External(b) => match b.downcast::<OfflineError>() {
            Ok(e) => *e,
            Err(b) => OfflineError::DataFusion(DataFusionError::External(b)),
        },
        DataFusionError::Shared(s) => match std::sync::Arc::try_unwrap(s) {
            Ok(e) => offline_error(e),
            Err(s) => OfflineError::DataFusion(DataFusionError::Shared(s)),
        },
        e => OfflineError::DataFusion(e),
    }
}

/// Grows the reservation by what `what` holds, or fails naming it and the limit.
fn reserve(r: &mut MemoryReservation, bytes: usize, what: &str) -> Result<()> {
    r.try_grow(bytes).map_err(|e| {
        DataFusionError::ResourcesExhausted(format!(
            "the point-in-time join's {what} needs {bytes} bytes more than the memory limit \
             leaves (raise --memory-limit): {e}"
        ))
    })
}

impl ExecutionPlan for PointInTimeJoinExec {
    fn name(&self) -> &str {
        "PointInTimeJoinExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.input.iter().collect()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = match (&self.mode, children.as_slice()) {
            (Mode::Entity, [one]) => Some(one.clone()),
            (Mode::Entityless { .. }, []) => None,
            (_, c) => {
                return Err(DataFusionError::Internal(format!(
                    "PointInTimeJoinExec: {} children for {:?}",
                    c.len(),
                    self.mode
                )));
            }
        };
        Ok(Arc::new(Self::with_schema(
            self.retrieval.clone(),
            self.mode.clone(),
            input,
            self.schema(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        task: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "PointInTimeJoinExec has one partition, not {partition}"
            )));
        }
        let schema = self.schema();
        let retrieval = self.retrieval.clone();
        let mode = self.mode.clone();
        let input = self.input.clone();
        let mut reservation =
            MemoryConsumer::new("PointInTimeJoinExec").register(task.memory_pool());
        let state = SessionStateBuilder::new()
            .with_config(task.session_config().clone())
            .with_runtime_env(task.runtime_env())
            .with_default_features()
            .build();
        let ctx = SessionContext::new_with_state(state);
        let expected = schema.clone();
        let answer = async move {
            let answer = match (mode, input) {
                (Mode::Entity, Some(input)) => {
                    let mut batches = Vec::new();
                    for p in 0..input.output_partitioning().partition_count() {
                        let mut s = input.execute(p, task.clone())?;
                        while let Some(b) = s.next().await {
                            batches.push(b?);
                        }
                    }
                    let entity = match batches.len() {
                        1 => batches.pop().expect("one"),
                        _ => datafusion::arrow::compute::concat_batches(&input.schema(), &batches)?,
                    };
                    drop(batches);
                    // Counted once the table owns its buffers: the input's batches may be
                    // slices of one buffer (a memory source), each reporting all of it.
                    reserve(
                        &mut reservation,
                        entity.get_array_memory_size(),
                        "entity table",
                    )?;
                    join_not_before(&ctx, &entity, &retrieval, None)
                        .await
                        .map_err(external)?
                }
                (Mode::Entityless { start, end }, None) => entityless(&ctx, &retrieval, start, end)
                    .await
                    .map_err(external)?,
                (mode, _) => {
                    return Err(DataFusionError::Internal(format!(
                        "PointInTimeJoinExec: no entity input for {mode:?}"
                    )));
                }
            };
            reservation.free();
            reserve(&mut reservation, answer.memory_size(), "answer")?;
            if answer.schema().fields() != expected.fields() {
                return Err(DataFusionError::Execution(format!(
                    "a source's schema changed since the retrieval was planned: planned \
                     {expected:?}, read {:?}",
                    answer.schema()
                )));
            }
            Ok((Arc::new(answer), reservation))
        };
        let batches = futures::stream::once(answer)
            .map_ok(|(answer, reservation)| {
                let reservation = Arc::new(reservation);
                futures::stream::iter(0..answer.num_batches()).map(move |i| {
                    // Held until the last batch is made.
                    let _held = &reservation;
                    answer.batch(i).map_err(external)
                })
            })
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}

/// The serialized node (beside its child, which DataFusion encodes).
#[derive(Clone, PartialEq, prost::Message)]
struct Node {
    /// JSON: `{"retrieval": …, "mode": …}`.
    #[prost(string, tag = "1")]
    spec: String,
    #[prost(message, optional, tag = "2")]
    schema: Option<datafusion_proto::protobuf::Schema>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Spec {
    retrieval: Retrieval,
    mode: Mode,
}

/// The codec for Larder's physical plan nodes ([`PointInTimeJoinExec`]).
#[derive(Debug, Default)]
pub struct LarderCodec;

impl PhysicalExtensionCodec for LarderCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        _ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        use prost::Message;
        let bad = |m: String| DataFusionError::Internal(format!("PointInTimeJoinExec: {m}"));
        let node = Node::decode(buf).map_err(|e| bad(e.to_string()))?;
        let spec: Spec = serde_json::from_str(&node.spec).map_err(|e| bad(e.to_string()))?;
        let schema: Schema = node
            .schema
            .as_ref()
            .ok_or_else(|| bad("no schema".into()))?
            .try_into()?;
        let input = match (&spec.mode, inputs) {
            (Mode::Entity, [one]) => Some(one.clone()),
            (Mode::Entityless { .. }, []) => None,
            (mode, i) => return Err(bad(format!("{} inputs for {mode:?}", i.len()))),
        };
        Ok(Arc::new(PointInTimeJoinExec::with_schema(
            spec.retrieval,
            spec.mode,
            input,
            Arc::new(schema),
        )))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        use prost::Message;
        let any: &dyn Any = node.as_ref();
        let Some(exec) = any.downcast_ref::<PointInTimeJoinExec>() else {
            return Err(DataFusionError::NotImplemented(format!(
                "LarderCodec cannot encode {}",
                node.name()
            )));
        };
        let spec = serde_json::to_string(&Spec {
            retrieval: exec.retrieval.clone(),
            mode: exec.mode.clone(),
        })
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let node = Node {
            spec,
            schema: Some(exec.schema().as_ref().try_into()?),
        };
        node.encode(buf)
            .map_err(|e| DataFusionError::Internal(e.to_string()))
    }
}
