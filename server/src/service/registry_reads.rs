//! The reads of Feast's registry server (`feast.registry.RegistryServer`, spec §8.3): objects
//! of a project by name or listed (filtered by tags), the whole registry, its infra — from the
//! repo's registry store, through the registry cache when the client allows a cached answer.
//! Not-found errors carry the Feast class the remote client re-raises. Transport-independent:
//! the gRPC adapter ([`crate::registry_grpc`]) calls these.

use std::{collections::BTreeMap, sync::Arc};

use larder_protos::feast::core as pb;
use larder_registry::{cache::RegistryCache, store::RegistrySnapshot};

use crate::error::{ErrorCode, ServiceError};

/// A registry object as the server finds it: by name, in a project, with tags.
pub trait Named {
    /// Feast's class for a missing object of this kind, and its noun in the message.
    const NOT_FOUND: (&'static str, &'static str);
    fn name(&self) -> &str;
    fn project(&self) -> &str;
    fn tags(&self) -> Option<&BTreeMap<String, String>>;
}

macro_rules! named_by_spec {
    ($($t:ty => $class:literal, $noun:literal;)*) => {$(
        impl Named for $t {
            const NOT_FOUND: (&'static str, &'static str) = ($class, $noun);
            fn name(&self) -> &str {
                self.spec.as_ref().map_or("", |s| s.name.as_str())
            }
            fn project(&self) -> &str {
                self.spec.as_ref().map_or("", |s| s.project.as_str())
            }
            fn tags(&self) -> Option<&BTreeMap<String, String>> {
                self.spec.as_ref().map(|s| &s.tags)
            }
        }
    )*};
}

named_by_spec! {
    pb::Entity => "EntityNotFoundException", "Entity";
    pb::FeatureView => "FeatureViewNotFoundException", "Feature view";
    pb::StreamFeatureView => "FeatureViewNotFoundException", "Feature view";
    pb::OnDemandFeatureView => "FeatureViewNotFoundException", "Feature view";
    pb::LabelView => "FeatureViewNotFoundException", "Feature view";
    pb::FeatureService => "FeatureServiceNotFoundException", "Feature service";
    pb::SavedDataset => "SavedDatasetNotFound", "Saved dataset";
    pb::Permission => "PermissionObjectNotFoundException", "Permission";
}

macro_rules! named_flat {
    ($($t:ty => $class:literal, $noun:literal;)*) => {$(
        impl Named for $t {
            const NOT_FOUND: (&'static str, &'static str) = ($class, $noun);
            fn name(&self) -> &str {
                &self.name
            }
            fn project(&self) -> &str {
                &self.project
            }
            fn tags(&self) -> Option<&BTreeMap<String, String>> {
                Some(&self.tags)
            }
        }
    )*};
}

named_flat! {
    pb::DataSource => "DataSourceObjectNotFoundException", "Data source";
    pb::ValidationReference => "ValidationReferenceNotFound", "Validation reference";
}

fn not_found<T: Named>(name: &str, project: &str) -> ServiceError {
    let (class, noun) = T::NOT_FOUND;
    ServiceError::feast(
        ErrorCode::NotFound,
        class,
        format!("{noun} {name} does not exist in project {project}"),
    )
}

fn has_tags(tags: Option<&BTreeMap<String, String>>, wanted: &BTreeMap<String, String>) -> bool {
    wanted
        .iter()
        .all(|(k, v)| tags.and_then(|t| t.get(k)) == Some(v))
}

/// The object of `items` named `name` in `project`.
pub fn get<T: Named + Clone>(items: &[T], name: &str, project: &str) -> Result<T, ServiceError> {
    items
        .iter()
        .find(|o| o.name() == name && o.project() == project)
        .cloned()
        .ok_or_else(|| not_found::<T>(name, project))
}

/// The objects of `items` in `project` carrying every one of `tags`, in registry order.
pub fn list<T: Named + Clone>(
    items: &[T],
    project: &str,
    tags: &BTreeMap<String, String>,
) -> Vec<T> {
    items
        .iter()
        .filter(|o| o.project() == project && has_tags(o.tags(), tags))
        .cloned()
        .collect()
}

/// Feast's lookup of a view of any kind: feature views, then stream, on-demand and label views.
pub fn any_feature_view(
    r: &pb::Registry,
    name: &str,
    project: &str,
) -> Result<larder_protos::feast::registry::AnyFeatureView, ServiceError> {
    use larder_protos::feast::registry::any_feature_view::AnyFeatureView as Any;
    let any = get(&r.feature_views, name, project)
        .map(Any::FeatureView)
        .or_else(|_| get(&r.stream_feature_views, name, project).map(Any::StreamFeatureView))
        .or_else(|_| get(&r.on_demand_feature_views, name, project).map(Any::OnDemandFeatureView))
        .or_else(|_| get(&r.label_views, name, project).map(Any::LabelView))?;
    Ok(larder_protos::feast::registry::AnyFeatureView {
        any_feature_view: Some(any),
    })
}

/// Every view of `project` but label views (`ListAllFeatureViews`), with the tags.
pub fn all_feature_views(
    r: &pb::Registry,
    project: &str,
    tags: &BTreeMap<String, String>,
) -> Vec<larder_protos::feast::registry::AnyFeatureView> {
    use larder_protos::feast::registry::{AnyFeatureView, any_feature_view::AnyFeatureView as Any};
    let wrap = |a| AnyFeatureView {
        any_feature_view: Some(a),
    };
    list(&r.feature_views, project, tags)
        .into_iter()
        .map(|v| wrap(Any::FeatureView(v)))
        .chain(
            list(&r.stream_feature_views, project, tags)
                .into_iter()
                .map(|v| wrap(Any::StreamFeatureView(v))),
        )
        .chain(
            list(&r.on_demand_feature_views, project, tags)
                .into_iter()
                .map(|v| wrap(Any::OnDemandFeatureView(v))),
        )
        .collect()
}

/// Projects by name (Feast's `ProjectObjectNotFoundException` when missing).
pub fn project(r: &pb::Registry, name: &str) -> Result<pb::Project, ServiceError> {
    r.projects
        .iter()
        .find(|p| p.spec.as_ref().is_some_and(|s| s.name == name))
        .cloned()
        .ok_or_else(|| {
            ServiceError::feast(
                ErrorCode::NotFound,
                "ProjectObjectNotFoundException",
                format!("Project {name} does not exist"),
            )
        })
}

/// Every project carrying `tags`, but the ones tagged protected (as Feast lists them).
pub fn projects(r: &pb::Registry, tags: &BTreeMap<String, String>) -> Vec<pb::Project> {
    r.projects
        .iter()
        .filter(|p| {
            let t = p.spec.as_ref().map(|s| &s.tags);
            has_tags(t, tags)
                && t.and_then(|t| t.get("feast.dev/protected-project"))
                    .is_none_or(|v| v != "true")
        })
        .cloned()
        .collect()
}

/// The registry the server reads, through a cache for reads that allow one.
pub struct RegistryReads {
    pub cache: Arc<RegistryCache>,
}

impl RegistryReads {
    /// The registry: the cached snapshot when `allow_cache`, else read now (and cached).
    pub async fn snapshot(&self, allow_cache: bool) -> Result<Arc<RegistrySnapshot>, ServiceError> {
        if allow_cache {
            // Refreshed first when the cache's ttl has passed (Feast's `sync` mode).
            return Ok(self.cache.get().await.snapshot.clone());
        }
        self.refresh().await?;
        Ok(self.cache.current().snapshot.clone())
    }

    /// Reads the registry again (`Refresh`).
    pub async fn refresh(&self) -> Result<(), ServiceError> {
        self.cache.refresh().await.map_err(ServiceError::from)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(name: &str, project: &str, tags: &[(&str, &str)]) -> pb::Entity {
        pb::Entity {
            spec: Some(pb::EntitySpecV2 {
                name: name.into(),
                project: project.into(),
                tags: tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            }),
            meta: None,
        }
    }

    #[test]
    fn objects_are_found_by_project_name_and_tags() {
        let items = vec![
            entity("driver", "a", &[("team", "x")]),
            entity("driver", "b", &[]),
            entity("rider", "a", &[("team", "y")]),
        ];
        assert_eq!(get(&items, "driver", "b").unwrap(), items[1]);
        let e = get(&items, "nope", "a").unwrap_err();
        assert_eq!(e.feast_class, Some("EntityNotFoundException"));
        assert_eq!(e.message, "Entity nope does not exist in project a");
        let team_x = BTreeMap::from([("team".to_owned(), "x".to_owned())]);
        assert_eq!(list(&items, "a", &team_x), vec![items[0].clone()]);
        assert_eq!(list(&items, "a", &BTreeMap::new()).len(), 2);
        assert!(list(&items, "c", &BTreeMap::new()).is_empty());
    }
}
