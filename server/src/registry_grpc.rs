//! The gRPC adapter of Feast's registry server (`feast.registry.RegistryServer`): each read
//! decodes the request, calls one function of [`crate::service::registry_reads`] over the
//! registry snapshot, and encodes the answer; errors carry Feast's JSON detail (the remote
//! client re-raises the class). Writes (`Apply*`, `Delete*`, `UpdateInfra`, `Commit`) go to
//! [`crate::service::registry_writes`], staged per connection; a refused write drops the
//! connection's staging, so a client's failed apply is never committed in part. Lineage and
//! features come from [`crate::service::registry_lineage`].

use std::sync::Arc;

use larder_protos::feast::{core as pb, registry::*};
use tonic::{Request, Response, Status};

use crate::{
    error::{ErrorCode, ServiceError},
    service::{
        registry_lineage as lineage,
        registry_reads::{
            RegistryReads, all_feature_views, any_feature_view, get, list, project, projects,
        },
        registry_writes::{Apply, Client, RegistryWrites},
    },
};
use larder_registry::store::ObjectKind;

pub struct RegistryGrpc {
    pub reads: Arc<RegistryReads>,
    pub writes: Arc<RegistryWrites>,
}

/// The connection a request came on (writes are staged per connection).
fn client<T>(request: &Request<T>) -> Result<Client, Status> {
    let c = request
        .extensions()
        .get::<crate::net::ConnectionId>()
        .ok_or_else(|| {
            status(ServiceError::new(
                ErrorCode::Internal,
                "a registry write came without its connection",
            ))
        })?;
    Ok(Client {
        id: c.id,
        alive: Arc::downgrade(&c.alive),
    })
}

fn missing_field(field: &str) -> Status {
    status(ServiceError::bad_request(format!(
        "the request has no {field}"
    )))
}

/// A service error as the remote registry client reads it: Feast's JSON detail (a `FeastError`
/// when no narrower class fits).
fn status(e: ServiceError) -> Status {
    let e = ServiceError {
        feast_class: Some(e.feast_class.unwrap_or("FeastError")),
        ..e
    };
    crate::grpc::status(e)
}

fn not_served(rpc: &str) -> Status {
    status(ServiceError::new(
        ErrorCode::NotImplemented,
        format!("larder serve-registry does not serve {rpc} yet"),
    ))
}

impl RegistryGrpc {
    /// One `Apply*` request: the object it carries (`field`, required) staged, or committed.
    async fn apply_one(
        &self,
        client: &Client,
        object: Option<Apply>,
        field: &str,
        project: &str,
        commit: bool,
    ) -> Result<Response<()>, Status> {
        let Some(object) = object else {
            self.writes.abandon(client);
            return Err(missing_field(field));
        };
        let done = self.writes.apply(client, object, project, commit).await;
        self.answer(client, done)
    }

    /// A write's answer; a refused write drops the connection's staging.
    fn answer(
        &self,
        client: &Client,
        done: Result<(), ServiceError>,
    ) -> Result<Response<()>, Status> {
        done.map(Response::new).map_err(|e| {
            self.writes.abandon(client);
            status(e)
        })
    }

    /// One `Delete*` request.
    async fn delete_one(
        &self,
        client: &Client,
        kind: ObjectKind,
        name: &str,
        project: &str,
        commit: bool,
    ) -> Result<Response<()>, Status> {
        let done = self
            .writes
            .delete(client, kind, name, project, commit)
            .await;
        self.answer(client, done)
    }
}

#[tonic::async_trait]
impl registry_server_server::RegistryServer for RegistryGrpc {
    async fn apply_entity(
        &self,
        request: Request<ApplyEntityRequest>,
    ) -> Result<Response<()>, Status> {
        let client = client(&request)?;
        let q = request.into_inner();
        let object = q.entity.map(Apply::Entity);
        self.apply_one(&client, object, "entity", &q.project, q.commit)
            .await
    }

    async fn get_entity(
        &self,
        request: Request<GetEntityRequest>,
    ) -> Result<Response<pb::Entity>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let r = &snapshot.proto;
        let answer: Result<pb::Entity, ServiceError> = get(&r.entities, &q.name, &q.project);
        answer.map(Response::new).map_err(status)
    }

    async fn list_entities(
        &self,
        request: Request<ListEntitiesRequest>,
    ) -> Result<Response<ListEntitiesResponse>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let r = &snapshot.proto;
        let answer: Result<ListEntitiesResponse, ServiceError> = Ok(ListEntitiesResponse {
            entities: list(&r.entities, &q.project, &q.tags),
            pagination: None,
        });
        answer.map(Response::new).map_err(status)
    }

    async fn delete_entity(
        &self,
        request: Request<DeleteEntityRequest>,
    ) -> Result<Response<()>, Status> {
        let client = client(&request)?;
        let q = request.into_inner();
        self.delete_one(&client, ObjectKind::Entity, &q.name, &q.project, q.commit)
            .await
    }

    async fn apply_data_source(
        &self,
        request: Request<ApplyDataSourceRequest>,
    ) -> Result<Response<()>, Status> {
        let client = client(&request)?;
        let q = request.into_inner();
        let object = q.data_source.map(Apply::DataSource);
        self.apply_one(&client, object, "data_source", &q.project, q.commit)
            .await
    }

    async fn get_data_source(
        &self,
        request: Request<GetDataSourceRequest>,
    ) -> Result<Response<pb::DataSource>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let r = &snapshot.proto;
        let answer: Result<pb::DataSource, ServiceError> =
            get(&r.data_sources, &q.name, &q.project);
        answer.map(Response::new).map_err(status)
    }

    async fn list_data_sources(
        &self,
        request: Request<ListDataSourcesRequest>,
    ) -> Result<Response<ListDataSourcesResponse>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let r = &snapshot.proto;
        let answer: Result<ListDataSourcesResponse, ServiceError> = Ok(ListDataSourcesResponse {
            data_sources: list(&r.data_sources, &q.project, &q.tags),
            pagination: None,
        });
        answer.map(Response::new).map_err(status)
    }

    async fn delete_data_source(
        &self,
        request: Request<DeleteDataSourceRequest>,
    ) -> Result<Response<()>, Status> {
        let client = client(&request)?;
        let q = request.into_inner();
        self.delete_one(
            &client,
            ObjectKind::DataSource,
            &q.name,
            &q.project,
            q.commit,
        )
        .await
    }

    async fn apply_feature_view(
        &self,
        request: Request<ApplyFeatureViewRequest>,
    ) -> Result<Response<()>, Status> {
        use apply_feature_view_request::BaseFeatureView as V;
        let client = client(&request)?;
        let q = request.into_inner();
        let object = q.base_feature_view.map(|v| match v {
            V::FeatureView(v) => Apply::FeatureView(v),
            V::StreamFeatureView(v) => Apply::StreamFeatureView(v),
            V::OnDemandFeatureView(v) => Apply::OnDemandFeatureView(v),
            V::LabelView(v) => Apply::LabelView(v),
        });
        self.apply_one(&client, object, "feature view", &q.project, q.commit)
            .await
    }

    async fn delete_feature_view(
        &self,
        request: Request<DeleteFeatureViewRequest>,
    ) -> Result<Response<()>, Status> {
        let client = client(&request)?;
        let q = request.into_inner();
        let done = self
            .writes
            .delete_feature_view(&client, &q.name, &q.project, q.commit)
            .await;
        self.answer(&client, done)
    }

    async fn get_any_feature_view(
        &self,
        request: Request<GetAnyFeatureViewRequest>,
    ) -> Result<Response<GetAnyFeatureViewResponse>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let r = &snapshot.proto;
        let answer: Result<GetAnyFeatureViewResponse, ServiceError> =
            any_feature_view(r, &q.name, &q.project).map(|v| GetAnyFeatureViewResponse {
                any_feature_view: Some(v),
            });
        answer.map(Response::new).map_err(status)
    }

    async fn list_all_feature_views(
        &self,
        request: Request<ListAllFeatureViewsRequest>,
    ) -> Result<Response<ListAllFeatureViewsResponse>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let r = &snapshot.proto;
        let answer: Result<ListAllFeatureViewsResponse, ServiceError> =
            Ok(ListAllFeatureViewsResponse {
                feature_views: all_feature_views(r, &q.project, &q.tags),
                pagination: None,
            });
        answer.map(Response::new).map_err(status)
    }

    async fn get_feature_view(
        &self,
        request: Request<GetFeatureViewRequest>,
    ) -> Result<Response<pb::FeatureView>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let r = &snapshot.proto;
        let answer: Result<pb::FeatureView, ServiceError> =
            get(&r.feature_views, &q.name, &q.project);
        answer.map(Response::new).map_err(status)
    }

    async fn list_feature_views(
        &self,
        request: Request<ListFeatureViewsRequest>,
    ) -> Result<Response<ListFeatureViewsResponse>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let r = &snapshot.proto;
        let answer: Result<ListFeatureViewsResponse, ServiceError> = Ok(ListFeatureViewsResponse {
            feature_views: list(&r.feature_views, &q.project, &q.tags),
            pagination: None,
        });
        answer.map(Response::new).map_err(status)
    }

    async fn get_stream_feature_view(
        &self,
        request: Request<GetStreamFeatureViewRequest>,
    ) -> Result<Response<pb::StreamFeatureView>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let r = &snapshot.proto;
        let answer: Result<pb::StreamFeatureView, ServiceError> =
            get(&r.stream_feature_views, &q.name, &q.project);
        answer.map(Response::new).map_err(status)
    }

    async fn list_stream_feature_views(
        &self,
        request: Request<ListStreamFeatureViewsRequest>,
    ) -> Result<Response<ListStreamFeatureViewsResponse>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let r = &snapshot.proto;
        let answer: Result<ListStreamFeatureViewsResponse, ServiceError> =
            Ok(ListStreamFeatureViewsResponse {
                stream_feature_views: list(&r.stream_feature_views, &q.project, &q.tags),
                pagination: None,
            });
        answer.map(Response::new).map_err(status)
    }

    async fn get_on_demand_feature_view(
        &self,
        request: Request<GetOnDemandFeatureViewRequest>,
    ) -> Result<Response<pb::OnDemandFeatureView>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let r = &snapshot.proto;
        let answer: Result<pb::OnDemandFeatureView, ServiceError> =
            get(&r.on_demand_feature_views, &q.name, &q.project);
        answer.map(Response::new).map_err(status)
    }

    async fn list_on_demand_feature_views(
        &self,
        request: Request<ListOnDemandFeatureViewsRequest>,
    ) -> Result<Response<ListOnDemandFeatureViewsResponse>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let r = &snapshot.proto;
        let answer: Result<ListOnDemandFeatureViewsResponse, ServiceError> =
            Ok(ListOnDemandFeatureViewsResponse {
                on_demand_feature_views: list(&r.on_demand_feature_views, &q.project, &q.tags),
                pagination: None,
            });
        answer.map(Response::new).map_err(status)
    }

    async fn get_label_view(
        &self,
        request: Request<GetLabelViewRequest>,
    ) -> Result<Response<pb::LabelView>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let r = &snapshot.proto;
        let answer: Result<pb::LabelView, ServiceError> = get(&r.label_views, &q.name, &q.project);
        answer.map(Response::new).map_err(status)
    }

    async fn list_label_views(
        &self,
        request: Request<ListLabelViewsRequest>,
    ) -> Result<Response<ListLabelViewsResponse>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let r = &snapshot.proto;
        let answer: Result<ListLabelViewsResponse, ServiceError> = Ok(ListLabelViewsResponse {
            label_views: list(&r.label_views, &q.project, &q.tags),
            pagination: None,
        });
        answer.map(Response::new).map_err(status)
    }

    async fn apply_feature_service(
        &self,
        request: Request<ApplyFeatureServiceRequest>,
    ) -> Result<Response<()>, Status> {
        let client = client(&request)?;
        let q = request.into_inner();
        let object = q.feature_service.map(Apply::FeatureService);
        self.apply_one(&client, object, "feature_service", &q.project, q.commit)
            .await
    }

    async fn get_feature_service(
        &self,
        request: Request<GetFeatureServiceRequest>,
    ) -> Result<Response<pb::FeatureService>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let r = &snapshot.proto;
        let answer: Result<pb::FeatureService, ServiceError> =
            get(&r.feature_services, &q.name, &q.project);
        answer.map(Response::new).map_err(status)
    }

    async fn list_feature_services(
        &self,
        request: Request<ListFeatureServicesRequest>,
    ) -> Result<Response<ListFeatureServicesResponse>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let r = &snapshot.proto;
        let answer: Result<ListFeatureServicesResponse, ServiceError> =
            Ok(ListFeatureServicesResponse {
                feature_services: list(&r.feature_services, &q.project, &q.tags)
                    .into_iter()
                    .filter(|s| {
                        q.feature_view.is_empty()
                            || s.spec.as_ref().is_some_and(|s| {
                                s.features
                                    .iter()
                                    .any(|p| p.feature_view_name == q.feature_view)
                            })
                    })
                    .collect(),
                pagination: None,
            });
        answer.map(Response::new).map_err(status)
    }

    async fn delete_feature_service(
        &self,
        request: Request<DeleteFeatureServiceRequest>,
    ) -> Result<Response<()>, Status> {
        let client = client(&request)?;
        let q = request.into_inner();
        self.delete_one(
            &client,
            ObjectKind::FeatureService,
            &q.name,
            &q.project,
            q.commit,
        )
        .await
    }

    async fn apply_saved_dataset(
        &self,
        request: Request<ApplySavedDatasetRequest>,
    ) -> Result<Response<()>, Status> {
        let client = client(&request)?;
        let q = request.into_inner();
        let object = q.saved_dataset.map(Apply::SavedDataset);
        self.apply_one(&client, object, "saved_dataset", &q.project, q.commit)
            .await
    }

    async fn get_saved_dataset(
        &self,
        request: Request<GetSavedDatasetRequest>,
    ) -> Result<Response<pb::SavedDataset>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let r = &snapshot.proto;
        let answer: Result<pb::SavedDataset, ServiceError> =
            get(&r.saved_datasets, &q.name, &q.project);
        answer.map(Response::new).map_err(status)
    }

    async fn list_saved_datasets(
        &self,
        request: Request<ListSavedDatasetsRequest>,
    ) -> Result<Response<ListSavedDatasetsResponse>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let r = &snapshot.proto;
        let answer: Result<ListSavedDatasetsResponse, ServiceError> =
            Ok(ListSavedDatasetsResponse {
                saved_datasets: list(&r.saved_datasets, &q.project, &q.tags),
                pagination: None,
            });
        answer.map(Response::new).map_err(status)
    }

    async fn delete_saved_dataset(
        &self,
        request: Request<DeleteSavedDatasetRequest>,
    ) -> Result<Response<()>, Status> {
        let client = client(&request)?;
        let q = request.into_inner();
        self.delete_one(
            &client,
            ObjectKind::SavedDataset,
            &q.name,
            &q.project,
            q.commit,
        )
        .await
    }

    async fn create_dataset_from_retrieval(
        &self,
        _: Request<CreateDatasetFromRetrievalRequest>,
    ) -> Result<Response<CreateDatasetFromRetrievalResponse>, Status> {
        Err(not_served("CreateDatasetFromRetrieval"))
    }

    async fn get_dataset_data(
        &self,
        _: Request<GetDatasetDataRequest>,
    ) -> Result<Response<GetDatasetDataResponse>, Status> {
        Err(not_served("GetDatasetData"))
    }

    async fn get_dataset_job_status(
        &self,
        _: Request<GetDatasetJobStatusRequest>,
    ) -> Result<Response<GetDatasetJobStatusResponse>, Status> {
        Err(not_served("GetDatasetJobStatus"))
    }

    async fn list_dataset_jobs(
        &self,
        _: Request<ListDatasetJobsRequest>,
    ) -> Result<Response<ListDatasetJobsResponse>, Status> {
        Err(not_served("ListDatasetJobs"))
    }

    async fn apply_validation_reference(
        &self,
        request: Request<ApplyValidationReferenceRequest>,
    ) -> Result<Response<()>, Status> {
        let client = client(&request)?;
        let q = request.into_inner();
        let object = q.validation_reference.map(Apply::ValidationReference);
        self.apply_one(
            &client,
            object,
            "validation_reference",
            &q.project,
            q.commit,
        )
        .await
    }

    async fn get_validation_reference(
        &self,
        request: Request<GetValidationReferenceRequest>,
    ) -> Result<Response<pb::ValidationReference>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let r = &snapshot.proto;
        let answer: Result<pb::ValidationReference, ServiceError> =
            get(&r.validation_references, &q.name, &q.project);
        answer.map(Response::new).map_err(status)
    }

    async fn list_validation_references(
        &self,
        request: Request<ListValidationReferencesRequest>,
    ) -> Result<Response<ListValidationReferencesResponse>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let r = &snapshot.proto;
        let answer: Result<ListValidationReferencesResponse, ServiceError> =
            Ok(ListValidationReferencesResponse {
                validation_references: list(&r.validation_references, &q.project, &q.tags),
                pagination: None,
            });
        answer.map(Response::new).map_err(status)
    }

    async fn delete_validation_reference(
        &self,
        request: Request<DeleteValidationReferenceRequest>,
    ) -> Result<Response<()>, Status> {
        let client = client(&request)?;
        let q = request.into_inner();
        self.delete_one(
            &client,
            ObjectKind::ValidationReference,
            &q.name,
            &q.project,
            q.commit,
        )
        .await
    }

    async fn apply_permission(
        &self,
        request: Request<ApplyPermissionRequest>,
    ) -> Result<Response<()>, Status> {
        let client = client(&request)?;
        let q = request.into_inner();
        let object = q.permission.map(Apply::Permission);
        self.apply_one(&client, object, "permission", &q.project, q.commit)
            .await
    }

    async fn get_permission(
        &self,
        request: Request<GetPermissionRequest>,
    ) -> Result<Response<pb::Permission>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let r = &snapshot.proto;
        let answer: Result<pb::Permission, ServiceError> = get(&r.permissions, &q.name, &q.project);
        answer.map(Response::new).map_err(status)
    }

    async fn list_permissions(
        &self,
        request: Request<ListPermissionsRequest>,
    ) -> Result<Response<ListPermissionsResponse>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let r = &snapshot.proto;
        let answer: Result<ListPermissionsResponse, ServiceError> = Ok(ListPermissionsResponse {
            permissions: list(&r.permissions, &q.project, &q.tags),
            pagination: None,
        });
        answer.map(Response::new).map_err(status)
    }

    async fn delete_permission(
        &self,
        request: Request<DeletePermissionRequest>,
    ) -> Result<Response<()>, Status> {
        let client = client(&request)?;
        let q = request.into_inner();
        self.delete_one(
            &client,
            ObjectKind::Permission,
            &q.name,
            &q.project,
            q.commit,
        )
        .await
    }

    async fn apply_project(
        &self,
        request: Request<ApplyProjectRequest>,
    ) -> Result<Response<()>, Status> {
        let client = client(&request)?;
        let q = request.into_inner();
        let object = q.project.map(Apply::Project);
        self.apply_one(&client, object, "project", "", q.commit)
            .await
    }

    async fn get_project(
        &self,
        request: Request<GetProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let r = &snapshot.proto;
        let answer: Result<pb::Project, ServiceError> = project(r, &q.name);
        answer.map(Response::new).map_err(status)
    }

    async fn list_projects(
        &self,
        request: Request<ListProjectsRequest>,
    ) -> Result<Response<ListProjectsResponse>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let r = &snapshot.proto;
        let answer: Result<ListProjectsResponse, ServiceError> = Ok(ListProjectsResponse {
            projects: projects(r, &q.tags),
            pagination: None,
        });
        answer.map(Response::new).map_err(status)
    }

    async fn delete_project(
        &self,
        request: Request<DeleteProjectRequest>,
    ) -> Result<Response<()>, Status> {
        let client = client(&request)?;
        let q = request.into_inner();
        let done = self.writes.delete_project(&client, &q.name, q.commit).await;
        self.answer(&client, done)
    }

    async fn apply_materialization(
        &self,
        request: Request<ApplyMaterializationRequest>,
    ) -> Result<Response<()>, Status> {
        let client = client(&request)?;
        let q = request.into_inner();
        let view = q
            .feature_view
            .ok_or_else(|| missing_field("feature_view"))?;
        let name = view.spec.map(|s| s.name).unwrap_or_default();
        let (Some(start), Some(end)) = (q.start_date, q.end_date) else {
            return Err(missing_field("start_date and end_date"));
        };
        self.writes
            .materialized(&client, &name, &q.project, (start, end), q.commit)
            .await
            .map(Response::new)
            .map_err(status)
    }

    async fn list_project_metadata(
        &self,
        request: Request<ListProjectMetadataRequest>,
    ) -> Result<Response<ListProjectMetadataResponse>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let r = &snapshot.proto;
        let answer: Result<ListProjectMetadataResponse, ServiceError> =
            Ok(ListProjectMetadataResponse {
                project_metadata: r
                    .project_metadata
                    .iter()
                    .filter(|m| m.project == q.project)
                    .cloned()
                    .collect(),
            });
        answer.map(Response::new).map_err(status)
    }

    async fn update_infra(
        &self,
        request: Request<UpdateInfraRequest>,
    ) -> Result<Response<()>, Status> {
        use prost::Message;
        let client = client(&request)?;
        let q = request.into_inner();
        let infra = q.infra.unwrap_or_default().encode_to_vec();
        let done = self
            .writes
            .update_infra(&client, &infra, &q.project, q.commit)
            .await;
        self.answer(&client, done)
    }

    async fn get_infra(
        &self,
        request: Request<GetInfraRequest>,
    ) -> Result<Response<pb::Infra>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        Ok(Response::new(snapshot.infra(&q.project)))
    }

    /// Commits what this connection has staged.
    async fn commit(&self, request: Request<()>) -> Result<Response<()>, Status> {
        let client = client(&request)?;
        self.writes
            .commit(&client)
            .await
            .map(Response::new)
            .map_err(status)
    }

    async fn refresh(&self, _: Request<RefreshRequest>) -> Result<Response<()>, Status> {
        self.reads.refresh().await.map_err(status)?;
        Ok(Response::new(()))
    }

    async fn proto(&self, _: Request<()>) -> Result<Response<pb::Registry>, Status> {
        let snapshot = self.reads.snapshot(true).await.map_err(status)?;
        Ok(Response::new(snapshot.proto.clone()))
    }

    async fn get_registry_lineage(
        &self,
        request: Request<GetRegistryLineageRequest>,
    ) -> Result<Response<GetRegistryLineageResponse>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let l = lineage::filtered(
            lineage::lineage(&snapshot.proto, &q.project),
            &q.filter_object_type,
            &q.filter_object_name,
        );
        let page = |items| {
            lineage::paginate_protos(items, q.pagination.as_ref(), q.sorting.as_ref())
                .map_err(status)
        };
        let (relationships, relationships_pagination) = page(l.direct)?;
        let (indirect_relationships, indirect_relationships_pagination) = page(l.indirect)?;
        Ok(Response::new(GetRegistryLineageResponse {
            relationships,
            indirect_relationships,
            relationships_pagination: Some(relationships_pagination),
            indirect_relationships_pagination: Some(indirect_relationships_pagination),
        }))
    }

    async fn get_object_relationships(
        &self,
        request: Request<GetObjectRelationshipsRequest>,
    ) -> Result<Response<GetObjectRelationshipsResponse>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let all = lineage::object_relationships(
            &snapshot.proto,
            &q.project,
            &q.object_type,
            &q.object_name,
            q.include_indirect,
        )
        .map_err(status)?;
        let (relationships, pagination) =
            lineage::paginate_protos(all, q.pagination.as_ref(), q.sorting.as_ref())
                .map_err(status)?;
        Ok(Response::new(GetObjectRelationshipsResponse {
            relationships,
            pagination: Some(pagination),
        }))
    }

    async fn list_features(
        &self,
        request: Request<ListFeaturesRequest>,
    ) -> Result<Response<ListFeaturesResponse>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        let filter = lineage::FeatureFilter {
            feature_view: q.feature_view,
            name: q.name,
            kind: q.kind,
        };
        let features = lineage::features(&snapshot.proto, &q.project, &filter);
        let (features, pagination) =
            lineage::paginate_protos(features, q.pagination.as_ref(), q.sorting.as_ref())
                .map_err(status)?;
        Ok(Response::new(ListFeaturesResponse {
            features,
            pagination: Some(pagination),
        }))
    }

    async fn get_feature(
        &self,
        request: Request<GetFeatureRequest>,
    ) -> Result<Response<Feature>, Status> {
        let q = request.into_inner();
        let snapshot = self.reads.snapshot(q.allow_cache).await.map_err(status)?;
        lineage::feature(&snapshot.proto, &q.project, &q.feature_view, &q.name)
            .map(Response::new)
            .map_err(status)
    }
}
