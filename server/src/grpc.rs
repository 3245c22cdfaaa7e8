//! The gRPC adapter: `feast.serving.ServingService` over the same [`OnlineService`] as HTTP.

use std::sync::Arc;

use larder_protos::feast::{
    serving::{
        FeatureList, FeatureViewMetadata, GetFeastServingInfoRequest, GetFeastServingInfoResponse,
        GetOnlineFeaturesRequest, GetOnlineFeaturesResponse, GetOnlineFeaturesResponseMetadata,
        get_online_features_request::Kind, get_online_features_response::FeatureVector,
        serving_service_server::ServingService,
    },
    types::{Value, value::Val},
};
use tonic::{Request, Response, Status};

use crate::{
    error::ServiceError,
    service::online::{FeatureSelection, OnlineRequest, OnlineService, Scalar},
};

pub struct ServingGrpc {
    pub online: Arc<OnlineService>,
}

fn status(e: ServiceError) -> Status {
    let message = match e.feast_class {
        Some(_) => serde_json::from_str::<String>(&e.feast_body()).unwrap_or(e.message),
        None => e.message,
    };
    Status::new(e.code.grpc_code(), message)
}

fn scalar(v: Value) -> Scalar {
    match v.val {
        None | Some(Val::NullVal(_)) => Scalar::Null,
        Some(Val::Int64Val(i)) | Some(Val::UnixTimestampVal(i)) => Scalar::Int(i),
        Some(Val::Int32Val(i)) => Scalar::Int(i as i64),
        Some(Val::StringVal(s)) => Scalar::Str(s),
        Some(Val::BytesVal(b)) => Scalar::Bytes(b),
        Some(Val::BoolVal(b)) => Scalar::Bool(b),
        Some(Val::DoubleVal(d)) => Scalar::Float(d),
        Some(Val::FloatVal(f)) => Scalar::Float(f as f64),
        Some(other) => Scalar::Other(format!("{other:?}")),
    }
}

#[tonic::async_trait]
impl ServingService for ServingGrpc {
    async fn get_feast_serving_info(
        &self,
        _: Request<GetFeastServingInfoRequest>,
    ) -> Result<Response<GetFeastServingInfoResponse>, Status> {
        Ok(Response::new(GetFeastServingInfoResponse {
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }))
    }

    async fn get_online_features(
        &self,
        request: Request<GetOnlineFeaturesRequest>,
    ) -> Result<Response<GetOnlineFeaturesResponse>, Status> {
        let r = request.into_inner();
        let selection = match r.kind {
            Some(Kind::FeatureService(s)) => FeatureSelection::Service(s.into()),
            Some(Kind::Features(f)) => {
                FeatureSelection::Refs(f.val.into_iter().map(Into::into).collect())
            }
            None => FeatureSelection::Refs(Vec::new()),
        };
        let req = OnlineRequest {
            selection,
            entities: r
                .entities
                .into_iter()
                .map(|(k, v)| (k.into(), v.val.into_iter().map(scalar).collect()))
                .collect(),
            full_feature_names: r.full_feature_names,
            include_view_metadata: r.include_feature_view_version_metadata,
        };
        let resp = self
            .online
            .get_online_features(&req)
            .await
            .map_err(status)?;
        Ok(Response::new(GetOnlineFeaturesResponse {
            metadata: Some(GetOnlineFeaturesResponseMetadata {
                feature_names: Some(FeatureList {
                    val: resp.feature_names,
                }),
                feature_view_metadata: resp
                    .view_metadata
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(name, version)| FeatureViewMetadata { name, version })
                    .collect(),
            }),
            results: resp
                .columns
                .into_iter()
                .map(|c| FeatureVector {
                    values: c.values,
                    statuses: c.statuses.into_iter().map(|s| s as i32).collect(),
                    event_timestamps: c.event_timestamps,
                })
                .collect(),
            status: false,
        }))
    }
}
