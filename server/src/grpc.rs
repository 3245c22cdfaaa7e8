//! The gRPC adapter: `feast.serving.ServingService` over the same [`OnlineService`] as HTTP.

use std::sync::Arc;

use larder_protos::feast::serving::{
    FeatureList, FeatureViewMetadata, GetFeastServingInfoRequest, GetFeastServingInfoResponse,
    GetOnlineFeaturesRequest, GetOnlineFeaturesResponse, GetOnlineFeaturesResponseMetadata,
    get_online_features_request::Kind, get_online_features_response::FeatureVector,
    serving_service_server::ServingService,
};
use tonic::{Request, Response, Status};

use crate::{
    error::ServiceError,
    service::online::{FeatureSelection, OnlineRequest, OnlineService, Scalar},
};

pub struct ServingGrpc {
    pub online: Arc<OnlineService>,
}

/// A service error as a gRPC status: the code from the one table, Feast's error JSON as the
/// message for Feast error classes (the SDK re-raises them).
pub fn status(e: ServiceError) -> Status {
    Status::new(tonic::Code::from(e.code.grpc_code()), e.grpc_message())
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
                .map(|(k, v)| {
                    (
                        k.into(),
                        v.val.into_iter().map(Scalar::from_proto).collect(),
                    )
                })
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
