//! The operations of Feast's offline server (spec §7.2), transport-independent: a command is
//! the JSON the SDK puts in a Flight descriptor, plus the table it uploads. The Flight adapter
//! ([`crate::flight`]) calls these.

use larder_offline::arrow::{array::RecordBatch, compute::concat_batches, datatypes::SchemaRef};
use serde_json::Value as Json;

use crate::{
    error::{ErrorCode, ServiceError},
    service::historical::{Features, HistoricalRequest, HistoricalService},
};

/// The read APIs (answered with a table); every other API is a write.
const READS: [&str; 4] = [
    "get_historical_features",
    "pull_latest_from_table_or_query",
    "pull_all_from_table_or_query",
    "get_table_column_names_and_types_from_data_source",
];

pub struct OfflineServer {
    pub historical: HistoricalService,
}

fn command(cmd: &[u8]) -> Result<serde_json::Map<String, Json>, ServiceError> {
    let v: Json = serde_json::from_slice(cmd)
        .map_err(|e| ServiceError::bad_request(format!("malformed Flight command: {e}")))?;
    match v {
        Json::Object(m) if m.get("api").is_some_and(Json::is_string) => Ok(m),
        _ => Err(ServiceError::bad_request(
            "malformed Flight command: not a JSON object with an \"api\"",
        )),
    }
}

fn strings(
    m: &serde_json::Map<String, Json>,
    key: &str,
) -> Result<Vec<Option<String>>, ServiceError> {
    let bad = || {
        ServiceError::bad_request(format!(
            "malformed Flight command: {key} must be a list of strings"
        ))
    };
    match m.get(key) {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(a)) => a
            .iter()
            .map(|v| match v {
                Json::String(s) => Ok(Some(s.clone())),
                Json::Null => Ok(None),
                _ => Err(bad()),
            })
            .collect(),
        Some(_) => Err(bad()),
    }
}

fn not_built(what: &str) -> ServiceError {
    ServiceError::new(
        ErrorCode::NotImplemented,
        format!("{what} is not supported by larder's offline server yet"),
    )
}

impl OfflineServer {
    /// Whether `cmd` names a read API (an error for a malformed command).
    pub fn is_read(cmd: &[u8]) -> Result<bool, ServiceError> {
        let m = command(cmd)?;
        Ok(READS.contains(&m["api"].as_str().expect("checked")))
    }

    /// A read API's answer.
    pub async fn read(
        &self,
        cmd: &[u8],
        upload: Vec<RecordBatch>,
    ) -> Result<(SchemaRef, Vec<RecordBatch>), ServiceError> {
        let m = command(cmd)?;
        self.read_api(m["api"].as_str().expect("checked"), &m, upload)
            .await
    }

    async fn read_api(
        &self,
        api: &str,
        m: &serde_json::Map<String, Json>,
        upload: Vec<RecordBatch>,
    ) -> Result<(SchemaRef, Vec<RecordBatch>), ServiceError> {
        match api {
            "get_historical_features" => self.get_historical_features(m, upload).await,
            api @ ("pull_latest_from_table_or_query" | "pull_all_from_table_or_query") => {
                self.pull(m, api == "pull_latest_from_table_or_query").await
            }
            "get_table_column_names_and_types_from_data_source" => self.column_types(m).await,
            api => Err(ServiceError::bad_request(format!(
                "{api} is not a read API of Feast's offline server"
            ))),
        }
    }

    /// A write API (`DoPut`).
    pub async fn write(&self, cmd: &[u8], upload: Vec<RecordBatch>) -> Result<(), ServiceError> {
        let m = command(cmd)?;
        match m["api"].as_str().expect("checked") {
            "offline_write_batch" => self.offline_write_batch(&m, upload).await,
            "persist" => self.persist(&m, upload).await,
            "validate_data_source" => self.validate_data_source(&m).await,
            "write_logged_features" => self.write_logged_features(&m, upload).await,
            api => Err(ServiceError::bad_request(format!(
                "unknown API {api} of Feast's offline server"
            ))),
        }
    }

    /// The file of the data source registered as `name` (a data source of the project, else a
    /// view's batch source of that name): its resolved path and, for `s3://`, its store.
    async fn source_file_named(
        &self,
        name: &str,
        doing: &str,
    ) -> Result<
        (
            String,
            Option<std::sync::Arc<dyn larder_registry::store::ObjectStore>>,
        ),
        ServiceError,
    > {
        let h = &self.historical;
        let snapshot = h.registry.load().await?;
        let catalog = larder_registry::model::Catalog::new(&snapshot, h.config.project.as_str())?;
        let source = catalog
            .data_sources
            .iter()
            .find(|d| d.name == name)
            .or_else(|| {
                catalog
                    .feature_views
                    .iter()
                    .filter_map(|v| v.batch_source.as_ref())
                    .find(|d| d.name == name)
            })
            .ok_or_else(|| {
                ServiceError::feast(
                    ErrorCode::NotFound,
                    "DataSourceObjectNotFoundException",
                    format!(
                        "Data source {name} does not exist in project {}",
                        h.config.project
                    ),
                )
            })?;
        super::source_file(
            &h.config,
            &h.env,
            source,
            &format!("data source {name}"),
            doing,
        )
    }

    /// `persist`: a retrieval's answer (`retrieve_func` with the retrieval's own parameters)
    /// written as one Parquet file to the destination, a file data source registered under
    /// `data_source_name` (as Feast's server looks it up), local or `s3://`; an existing file
    /// is replaced only with `allow_overwrite`.
    async fn persist(
        &self,
        m: &serde_json::Map<String, Json>,
        upload: Vec<RecordBatch>,
    ) -> Result<(), ServiceError> {
        let retrieve = m
            .get("retrieve_func")
            .and_then(Json::as_str)
            .filter(|f| READS[..3].contains(f))
            .ok_or_else(|| {
                ServiceError::bad_request(
                    "malformed Flight command: persist needs a retrieve_func of \
                     get_historical_features or pull_*_from_table_or_query",
                )
            })?;
        let name = m
            .get("data_source_name")
            .and_then(Json::as_str)
            .ok_or_else(|| {
                ServiceError::bad_request(
                    "malformed Flight command: persist needs a data_source_name",
                )
            })?;
        let (uri, bucket) = self.source_file_named(name, "persists to").await?;
        let overwrite = m
            .get("allow_overwrite")
            .and_then(Json::as_bool)
            .unwrap_or(false);
        let exists = match &bucket {
            Some(store) => {
                let key = uri
                    .strip_prefix("s3://")
                    .and_then(|r| r.split_once('/'))
                    .map_or("", |(_, k)| k);
                use larder_registry::store::ObjectStoreExt as _;
                match store.head(&key.into()).await {
                    Ok(_) => true,
                    Err(larder_offline::object_store::Error::NotFound { .. }) => false,
                    Err(e) => {
                        return Err(ServiceError::new(
                            ErrorCode::Unavailable,
                            format!("persist to {uri}: {e}"),
                        ));
                    }
                }
            }
            None => std::path::Path::new(&uri).exists(),
        };
        if exists && !overwrite {
            return Err(ServiceError::feast(
                ErrorCode::Conflict,
                "SavedDatasetLocationAlreadyExists",
                format!("Saved dataset location {uri} already exists."),
            ));
        }
        let (schema, batches) = self.read_api(retrieve, m, upload).await?;
        let ok = batches.into_iter().map(Ok::<_, std::convert::Infallible>);
        match bucket {
            Some(store) => larder_offline::table::put_parquet(store, &uri, &schema, ok).await?,
            None => {
                let path = std::path::PathBuf::from(&uri);
                tokio::task::spawn_blocking(move || {
                    larder_offline::table::write_table(&path, &schema, ok)
                })
                .await
                .map_err(ServiceError::internal)??
            }
        }
        tracing::info!(destination = %uri, "persisted");
        Ok(())
    }

    /// `write_logged_features`: a log table of feature service `feature_service_name` written
    /// to the service's logging destination as Feast's file store writes it (a Parquet dataset
    /// partitioned by the destination's `partition_by`), the way `larder serve` logs.
    async fn write_logged_features(
        &self,
        m: &serde_json::Map<String, Json>,
        upload: Vec<RecordBatch>,
    ) -> Result<(), ServiceError> {
        let h = &self.historical;
        let name = m
            .get("feature_service_name")
            .and_then(Json::as_str)
            .ok_or_else(|| {
                ServiceError::bad_request(
                    "malformed Flight command: write_logged_features needs a feature_service_name",
                )
            })?;
        let snapshot = h.registry.load().await?;
        let catalog = larder_registry::model::Catalog::new(&snapshot, h.config.project.as_str())?;
        let service = catalog
            .feature_services
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| super::service_not_found(name, h.config.project.as_str()))?;
        let Some(logging) = &service.logging else {
            return Err(ServiceError::bad_request(format!(
                "feature service {name} has no logging_config: its features are not logged"
            )));
        };
        let file = logging
            .file()
            .map_err(|kind| not_built(&format!("logging to {kind}")))?;
        let Some(schema) = upload.first().map(|b| b.schema()) else {
            return Ok(());
        };
        let table = concat_batches(&schema, &upload)
            .map_err(|e| ServiceError::bad_request(format!("the uploaded log table: {e}")))?;
        let table = larder_offline::historical::drop_pandas_index(table);
        if table.num_rows() == 0 {
            return Ok(());
        }
        let target = super::feature_log::destination(
            &h.config,
            &h.env,
            &file.path,
            &file.s3_endpoint_override,
        )?;
        let files =
            larder_offline::feature_log::write_dataset(&target, &table, &file.partition_by).await?;
        tracing::info!(
            feature_service = name,
            rows = table.num_rows(),
            files = files.len(),
            "logged features written"
        );
        Ok(())
    }

    /// `offline_write_batch`: the uploaded rows appended to the view's batch source as a new
    /// Parquet file (as an offline `/push` appends them; a single-file source is rewritten).
    /// Like Feast's server, the view is looked up in this server's own project.
    async fn offline_write_batch(
        &self,
        m: &serde_json::Map<String, Json>,
        upload: Vec<RecordBatch>,
    ) -> Result<(), ServiceError> {
        use larder_offline::append::{SourceDir, prepare_arrow, write};
        let h = &self.historical;
        let names = strings(m, "feature_view_names")?;
        let [Some(name)] = names.as_slice() else {
            return Err(ServiceError::bad_request(
                "malformed Flight command: offline_write_batch needs exactly one feature view name",
            ));
        };
        let snapshot = h.registry.load().await?;
        let catalog = larder_registry::model::Catalog::new(&snapshot, h.config.project.as_str())?;
        let view = catalog
            .view(name)
            .ok_or_else(|| super::view_not_found(name, h.config.project.as_str()))?;
        let (uri, bucket) = super::file_source(&h.config, &h.env, view, "writes to")?;
        let target = match bucket {
            Some(store) => SourceDir::bucket(&uri, store),
            None => SourceDir::local(&uri)?,
        };
        let schema = upload
            .first()
            .map(|b| b.schema())
            .ok_or_else(|| ServiceError::bad_request("no rows were uploaded"))?;
        let rows = concat_batches(&schema, &upload)
            .map_err(|e| ServiceError::bad_request(format!("the uploaded rows: {e}")))?;
        let rows = larder_offline::historical::drop_pandas_index(rows);
        if rows.num_rows() == 0 {
            return Ok(());
        }
        // The SDK renames the source's columns to feature names by the source's field_mapping
        // before it sends them (and Feast's own store then refuses them): the source's columns
        // take them back.
        let rows = match view.batch_source.as_ref() {
            Some(src) if !src.field_mapping.is_empty() => {
                let back: std::collections::HashMap<&str, &str> = src
                    .field_mapping
                    .iter()
                    .map(|(column, feature)| (feature.as_str(), column.as_str()))
                    .collect();
                let fields: Vec<_> = rows
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| match back.get(f.name().as_str()) {
                        Some(column) if rows.schema().column_with_name(column).is_none() => {
                            f.as_ref().clone().with_name(*column)
                        }
                        _ => f.as_ref().clone(),
                    })
                    .collect();
                RecordBatch::try_new(
                    std::sync::Arc::new(larder_offline::arrow::datatypes::Schema::new(fields)),
                    rows.columns().to_vec(),
                )
                .map_err(ServiceError::internal)?
            }
            _ => rows,
        };
        let prepared = prepare_arrow(&target, &rows)
            .await
            .map_err(|e| ServiceError::from(e).context(format!("feature view {name}")))?;
        let done = write(&target, &[prepared])
            .await
            .map_err(|e| ServiceError::from(e).context(format!("feature view {name}")))?;
        tracing::info!(view = %name, file = %done.file, rows = done.rows, "offline_write_batch");
        Ok(())
    }

    /// `pull_latest_from_table_or_query` (the latest row per key in `[start, end]`, what
    /// `feast materialize` asks a remote offline store for) or `pull_all_from_table_or_query`
    /// (every row in the range; `end_date` may be null).
    async fn pull(
        &self,
        m: &serde_json::Map<String, Json>,
        latest: bool,
    ) -> Result<(SchemaRef, Vec<RecordBatch>), ServiceError> {
        use futures::TryStreamExt;
        use larder_offline::source::{LatestRowsQuery, all_rows, latest_rows, register_bucket};
        let h = &self.historical;
        let text = |key: &str| -> Result<Option<String>, ServiceError> {
            match m.get(key) {
                None | Some(Json::Null) => Ok(None),
                Some(Json::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ServiceError::bad_request(format!(
                    "malformed Flight command: {key} must be a string"
                ))),
            }
        };
        let required = |key: &str| -> Result<String, ServiceError> {
            text(key)?.ok_or_else(|| {
                ServiceError::bad_request(format!("malformed Flight command: {key} is missing"))
            })
        };
        let time = |s: &str| -> Result<i64, ServiceError> {
            larder_types::value::parse_timestamp(s)
                .map(|t| t.timestamp_micros())
                .map_err(|e| ServiceError::bad_request(format!("malformed Flight command: {e}")))
        };
        let name = required("data_source_name")?;
        let (uri, bucket) = self.source_file_named(&name, "reads").await?;
        let end = match text("end_date")? {
            Some(e) => time(&e)?,
            None if !latest => i64::MAX,
            None => {
                return Err(ServiceError::bad_request(
                    "malformed Flight command: end_date is missing",
                ));
            }
        };
        // The client names the source's own columns (Feast's materialization reverses the
        // field_mapping before asking, and applies it to the answer).
        let q = LatestRowsQuery {
            uri,
            field_mapping: Default::default(),
            join_keys: strings(m, "join_key_columns")?
                .into_iter()
                .flatten()
                .collect(),
            features: strings(m, "feature_name_columns")?
                .into_iter()
                .flatten()
                .collect(),
            timestamp_field: required("timestamp_field")?,
            created_timestamp_column: text("created_timestamp_column")?.filter(|c| !c.is_empty()),
            start_micros: time(&required("start_date")?)?,
            end_micros: end,
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let ctx = larder_offline::historical::session(h.memory_limit, cores)?;
        if let Some(store) = bucket {
            register_bucket(&ctx, &q.uri, store)?;
        }
        let stream = if latest {
            latest_rows(&ctx, &q).await?
        } else {
            all_rows(&ctx, &q).await?
        };
        let schema = stream.schema();
        let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(|e| {
            ServiceError::from(larder_offline::OfflineError::Source {
                uri: q.uri.clone(),
                source: e,
            })
        })?;
        Ok((schema, batches))
    }

    /// A data source's columns and their pyarrow type names, from the `data_source_proto` (the
    /// DataSource as protobuf JSON): a table of string columns `name` and `type`.
    /// The file data source `data_source_proto` describes (the DataSource as protobuf JSON):
    /// its name, its timestamp field and its columns.
    async fn proto_source_columns(
        &self,
        m: &serde_json::Map<String, Json>,
    ) -> Result<
        (
            String,
            String,
            Vec<larder_offline::arrow::datatypes::FieldRef>,
        ),
        ServiceError,
    > {
        let bad = |what: &str| {
            ServiceError::bad_request(format!(
                "malformed Flight command: data_source_proto {what}"
            ))
        };
        let proto: Json = match m.get("data_source_proto") {
            Some(Json::String(s)) => serde_json::from_str(s).map_err(|e| bad(&e.to_string()))?,
            Some(v @ Json::Object(_)) => v.clone(),
            _ => return Err(bad("is missing")),
        };
        let name = proto.get("name").and_then(Json::as_str).unwrap_or("");
        let options = proto.get("fileOptions").ok_or_else(|| {
            ServiceError::new(
                ErrorCode::NotImplemented,
                format!("data source {name}: larder reads the columns of file sources only (yet)"),
            )
        })?;
        let uri = options
            .get("uri")
            .and_then(Json::as_str)
            .ok_or_else(|| bad("has no fileOptions.uri"))?;
        let source = larder_registry::model::DataSource {
            name: name.to_owned(),
            kind: larder_registry::model::SourceKind::File {
                uri: uri.to_owned(),
                s3_endpoint_override: options
                    .get("s3EndpointOverride")
                    .and_then(Json::as_str)
                    .unwrap_or("")
                    .to_owned(),
            },
            class_type: String::new(),
            timestamp_field: String::new(),
            created_timestamp_column: String::new(),
            field_mapping: Default::default(),
            date_partition_column: String::new(),
            description: String::new(),
            tags: Default::default(),
            owner: String::new(),
        };
        let h = &self.historical;
        let (uri, bucket) = super::source_file(
            &h.config,
            &h.env,
            &source,
            &format!("data source {name}"),
            "reads",
        )?;
        let ctx = larder_offline::historical::session(h.memory_limit, 1)?;
        if let Some(store) = bucket {
            larder_offline::source::register_bucket(&ctx, &uri, store)?;
        }
        let columns = larder_offline::source::columns(&ctx, &uri).await?;
        let timestamp_field = proto
            .get("timestampField")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_owned();
        Ok((name.to_owned(), timestamp_field, columns))
    }

    /// `validate_data_source`, as Feast's file source validates: a path that cannot be read or a
    /// timestamp field the files lack is logged as a warning, never refused (so `feast apply`
    /// through Larder passes where it passes through Feast); other source kinds are not checked.
    async fn validate_data_source(
        &self,
        m: &serde_json::Map<String, Json>,
    ) -> Result<(), ServiceError> {
        match self.proto_source_columns(m).await {
            Ok((name, ts, columns)) => {
                if !ts.is_empty() && !columns.iter().any(|c| *c.name() == ts) {
                    tracing::warn!(source = %name, timestamp_field = %ts, "the data source's files have no such timestamp column");
                }
                Ok(())
            }
            Err(e) if e.code == ErrorCode::BadRequest && e.message.starts_with("malformed") => {
                Err(e)
            }
            Err(e) if e.code == ErrorCode::NotImplemented => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e.message, "could not validate a data source");
                Ok(())
            }
        }
    }

    async fn column_types(
        &self,
        m: &serde_json::Map<String, Json>,
    ) -> Result<(SchemaRef, Vec<RecordBatch>), ServiceError> {
        use larder_offline::arrow::{
            array::StringArray,
            datatypes::{DataType, Field, Schema},
        };
        let (_, _, columns) = self.proto_source_columns(m).await?;
        let schema = std::sync::Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("type", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                std::sync::Arc::new(StringArray::from_iter_values(
                    columns.iter().map(|f| f.name().as_str()),
                )),
                std::sync::Arc::new(StringArray::from_iter_values(
                    columns.iter().map(|f| pyarrow_type(f.data_type())),
                )),
            ],
        )
        .map_err(ServiceError::internal)?;
        Ok((schema, vec![batch]))
    }

    async fn get_historical_features(
        &self,
        m: &serde_json::Map<String, Json>,
        upload: Vec<RecordBatch>,
    ) -> Result<(SchemaRef, Vec<RecordBatch>), ServiceError> {
        let project = self.historical.config.project.as_str();
        if let Some(p) = m.get("project").and_then(Json::as_str)
            && p != project
        {
            return Err(ServiceError::new(
                ErrorCode::NotFound,
                format!("project {p} is not served here (this server serves project {project})"),
            ));
        }
        let refs: Vec<String> = strings(m, "feature_refs")?.into_iter().flatten().collect();
        let names = strings(m, "feature_view_names")?;
        let mut aliases = strings(m, "name_aliases")?;
        aliases.resize(names.len(), None);
        let views = names
            .into_iter()
            .zip(aliases)
            .filter_map(|(v, a)| Some((v?, a)))
            .collect();
        let req = HistoricalRequest {
            features: Features::Remote { views, refs },
            full_feature_names: m
                .get("full_feature_names")
                .and_then(Json::as_bool)
                .unwrap_or(false),
            filter_by_created_timestamp: false,
        };
        match m.get("entity_df_sql") {
            None | Some(Json::Null) => {}
            Some(Json::String(sql)) => {
                // The uploaded table is the client's placeholder.
                let answer = self
                    .historical
                    .get_historical_features_sql(sql, &req)
                    .await?;
                return Ok((answer.schema(), answer.collect().await?));
            }
            Some(_) => {
                return Err(ServiceError::bad_request(
                    "malformed Flight command: entity_df_sql must be a string",
                ));
            }
        }
        let schema = upload
            .first()
            .map(|b| b.schema())
            .ok_or_else(|| ServiceError::bad_request("no entity dataframe was uploaded"))?;
        if schema.fields().len() == 1 && schema.field(0).name() == "key" {
            // The placeholder table: no entity dataframe (entity-less mode).
            let date = |key: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, ServiceError> {
                match m.get(key) {
                    None | Some(Json::Null) => Ok(None),
                    Some(Json::String(s)) => larder_types::value::parse_timestamp(s)
                        .map(Some)
                        .map_err(|e| {
                            ServiceError::bad_request(format!(
                                "malformed Flight command: {key}: {e}"
                            ))
                        }),
                    Some(_) => Err(ServiceError::bad_request(format!(
                        "malformed Flight command: {key} must be a string"
                    ))),
                }
            };
            let answer = self
                .historical
                .get_historical_features_entityless(&req, date("start_date")?, date("end_date")?)
                .await?;
            return Ok((answer.schema(), answer.collect().await?));
        }
        let entity = concat_batches(&schema, &upload).map_err(|e| {
            ServiceError::bad_request(format!("the uploaded entity dataframe: {e}"))
        })?;
        let answer = self
            .historical
            .get_historical_features(entity, &req)
            .await?;
        Ok((answer.schema(), answer.collect().await?))
    }
}

/// An Arrow type's name as pyarrow prints it (`str(pa.DataType)`), which Feast compares.
fn pyarrow_type(t: &larder_offline::arrow::datatypes::DataType) -> String {
    use larder_offline::arrow::datatypes::{DataType as D, TimeUnit};
    let unit = |u: &TimeUnit| match u {
        TimeUnit::Second => "s",
        TimeUnit::Millisecond => "ms",
        TimeUnit::Microsecond => "us",
        TimeUnit::Nanosecond => "ns",
    };
    match t {
        D::Null => "null".into(),
        D::Boolean => "bool".into(),
        D::Int8 => "int8".into(),
        D::Int16 => "int16".into(),
        D::Int32 => "int32".into(),
        D::Int64 => "int64".into(),
        D::UInt8 => "uint8".into(),
        D::UInt16 => "uint16".into(),
        D::UInt32 => "uint32".into(),
        D::UInt64 => "uint64".into(),
        D::Float16 => "halffloat".into(),
        D::Float32 => "float".into(),
        D::Float64 => "double".into(),
        D::Utf8 => "string".into(),
        D::LargeUtf8 => "large_string".into(),
        D::Utf8View => "string_view".into(),
        D::Binary => "binary".into(),
        D::LargeBinary => "large_binary".into(),
        D::BinaryView => "binary_view".into(),
        D::FixedSizeBinary(n) => format!("fixed_size_binary[{n}]"),
        D::Date32 => "date32[day]".into(),
        D::Date64 => "date64[ms]".into(),
        D::Time32(u) => format!("time32[{}]", unit(u)),
        D::Time64(u) => format!("time64[{}]", unit(u)),
        D::Duration(u) => format!("duration[{}]", unit(u)),
        D::Timestamp(u, None) => format!("timestamp[{}]", unit(u)),
        D::Timestamp(u, Some(tz)) => format!("timestamp[{}, tz={tz}]", unit(u)),
        D::Decimal128(p, s) => format!("decimal128({p}, {s})"),
        D::Decimal256(p, s) => format!("decimal256({p}, {s})"),
        D::List(f) => format!("list<{}: {}>", f.name(), pyarrow_type(f.data_type())),
        D::LargeList(f) => format!("large_list<{}: {}>", f.name(), pyarrow_type(f.data_type())),
        D::Struct(fs) => format!(
            "struct<{}>",
            fs.iter()
                .map(|f| format!("{}: {}", f.name(), pyarrow_type(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        D::Map(f, _) => match f.data_type() {
            D::Struct(kv) if kv.len() == 2 => format!(
                "map<{}, {}>",
                pyarrow_type(kv[0].data_type()),
                pyarrow_type(kv[1].data_type())
            ),
            other => other.to_string(),
        },
        D::Dictionary(k, v) => format!(
            "dictionary<values={}, indices={}, ordered=0>",
            pyarrow_type(v),
            pyarrow_type(k)
        ),
        other => other.to_string(),
    }
}
