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
        match m["api"].as_str().expect("checked") {
            "get_historical_features" => self.get_historical_features(&m, upload).await,
            api if READS.contains(&api) => Err(not_built(api)),
            api => Err(ServiceError::bad_request(format!(
                "{api} is not a read API of Feast's offline server"
            ))),
        }
    }

    /// A write API (`DoPut`).
    pub async fn write(&self, cmd: &[u8], _upload: Vec<RecordBatch>) -> Result<(), ServiceError> {
        let m = command(cmd)?;
        match m["api"].as_str().expect("checked") {
            api @ ("offline_write_batch"
            | "write_logged_features"
            | "persist"
            | "validate_data_source") => Err(not_built(api)),
            api => Err(ServiceError::bad_request(format!(
                "unknown API {api} of Feast's offline server"
            ))),
        }
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
        if m.get("entity_df_sql").is_some_and(|v| !v.is_null()) {
            return Err(not_built("an entity dataframe given as SQL"));
        }
        let entityless =
            || not_built("entity-less retrieval (start_date/end_date without an entity dataframe)");
        if ["start_date", "end_date"]
            .iter()
            .any(|k| m.get(*k).is_some_and(|v| !v.is_null()))
        {
            return Err(entityless());
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
        let schema = upload
            .first()
            .map(|b| b.schema())
            .ok_or_else(|| ServiceError::bad_request("no entity dataframe was uploaded"))?;
        if schema.fields().len() == 1 && schema.field(0).name() == "key" {
            return Err(entityless());
        }
        let entity = concat_batches(&schema, &upload).map_err(|e| {
            ServiceError::bad_request(format!("the uploaded entity dataframe: {e}"))
        })?;
        let answer = self
            .historical
            .get_historical_features(entity, &req)
            .await?;
        Ok((answer.schema(), answer.collect()?))
    }
}
