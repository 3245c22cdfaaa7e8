//! `larder plan` and `larder apply` of a repo's YAML definitions
//! ([`larder_registry::definitions`]): the definitions are compared with the registry's
//! objects of the project, and each one created or changed is applied — through
//! [`RegistryWrites`], so every Feast rule of the registry server holds (created times kept,
//! feature-view versions, name conflicts) — and each object of the project that no file
//! defines is deleted, as `feast apply` deletes what the repo no longer has. All in one
//! revision-checked commit: a concurrent writer makes `apply` fail with nothing written.
//! The plan is printed as Feast's `feast plan` prints its registry diff (data sources are not
//! listed, as in Feast).

use std::{collections::BTreeMap, sync::Arc};

use larder_protos::feast::core as pb;
use larder_registry::{
    cache::RegistryCache,
    clock::SystemClock,
    config::RepoConfig,
    definitions::{self, Definition, SECTIONS},
    store::{ObjectKind, RegistryStore},
};
use prost::Message;

use super::{
    registry_reads::RegistryReads,
    registry_writes::{Apply, Client, RegistryWrites},
};
use crate::error::ServiceError;

/// What a plan does to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Create,
    Update,
    Delete,
}

/// One line of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub transition: Transition,
    pub kind: ObjectKind,
    pub name: String,
}

impl std::fmt::Display for Step {
    /// Feast's `RegistryDiff.to_string` line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let action = match self.transition {
            Transition::Create => "Created",
            Transition::Update => "Updated",
            Transition::Delete => "Deleted",
        };
        let kind = match self.kind {
            ObjectKind::OnDemandFeatureView => "on demand feature view",
            ObjectKind::StreamFeatureView => "stream feature view",
            other => other.label(),
        };
        write!(f, "{action} {kind} {}", self.name)
    }
}

/// An object's definition: what a comparison looks at (no metadata, no class type).
fn comparable(kind: ObjectKind, bytes: &[u8]) -> Result<serde_json::Value, ServiceError> {
    definitions::definition_json(kind, bytes).map_err(ServiceError::internal)
}

fn apply_of(kind: ObjectKind, bytes: &[u8]) -> Result<Apply, ServiceError> {
    let bad = |e: prost::DecodeError| ServiceError::internal(format!("a definition: {e}"));
    Ok(match kind {
        ObjectKind::Entity => Apply::Entity(pb::Entity::decode(bytes).map_err(bad)?),
        ObjectKind::DataSource => Apply::DataSource(pb::DataSource::decode(bytes).map_err(bad)?),
        ObjectKind::FeatureView => Apply::FeatureView(pb::FeatureView::decode(bytes).map_err(bad)?),
        ObjectKind::StreamFeatureView => {
            Apply::StreamFeatureView(pb::StreamFeatureView::decode(bytes).map_err(bad)?)
        }
        ObjectKind::OnDemandFeatureView => {
            Apply::OnDemandFeatureView(pb::OnDemandFeatureView::decode(bytes).map_err(bad)?)
        }
        ObjectKind::LabelView => Apply::LabelView(pb::LabelView::decode(bytes).map_err(bad)?),
        ObjectKind::FeatureService => {
            Apply::FeatureService(pb::FeatureService::decode(bytes).map_err(bad)?)
        }
        ObjectKind::Permission => Apply::Permission(pb::Permission::decode(bytes).map_err(bad)?),
        other => {
            return Err(ServiceError::internal(format!(
                "{} objects are not definitions",
                other.label()
            )));
        }
    })
}

/// Plans (and with `apply`, applies) the repo's definitions; the steps, in order.
pub async fn plan(
    config: &RepoConfig,
    store: Arc<dyn RegistryStore>,
    apply: bool,
) -> anyhow::Result<Vec<Step>> {
    let project = config.project.as_str();
    let defs = definitions::load(&config.repo_path, project)?;
    let cache = Arc::new(
        RegistryCache::open_allowing_missing(store.clone(), 0, Arc::new(SystemClock)).await?,
    );
    let snapshot = cache.current().snapshot.clone();
    let reads = Arc::new(RegistryReads { cache });
    let writes = RegistryWrites::new(store, reads, Arc::new(SystemClock));
    let alive = Arc::new(());
    let client = Client {
        id: 0,
        alive: Arc::downgrade(&alive),
    };
    let r = &snapshot.proto;
    let mut steps = Vec::new();
    let stored_project = r
        .projects
        .iter()
        .filter_map(|p| p.spec.clone())
        .find(|s| s.name == project);
    if stored_project.as_ref() != defs.project.spec.as_ref() {
        writes
            .apply(
                &client,
                Apply::Project(defs.project.clone()),
                project,
                false,
            )
            .await?;
    }
    let mut defined: BTreeMap<(ObjectKind, String), &Definition> = BTreeMap::new();
    for d in &defs.objects {
        defined.insert((d.kind, d.name.clone()), d);
    }
    for (_, kind) in SECTIONS {
        let stored: BTreeMap<String, Vec<u8>> = definitions::objects_of(r, kind, project)
            .into_iter()
            .collect();
        for d in defs.objects.iter().filter(|d| d.kind == kind) {
            let transition = match stored.get(&d.name) {
                None => Transition::Create,
                Some(old) if comparable(kind, old)? != comparable(kind, &d.bytes)? => {
                    Transition::Update
                }
                Some(_) => continue,
            };
            writes
                .apply(&client, apply_of(kind, &d.bytes)?, project, false)
                .await
                .map_err(|e| anyhow::anyhow!("{} ({}): {e}", d.name, d.origin))?;
            steps.push(Step {
                transition,
                kind,
                name: d.name.clone(),
            });
        }
        for name in stored.keys() {
            if defined.contains_key(&(kind, name.clone())) {
                continue;
            }
            let done = match kind {
                ObjectKind::FeatureView
                | ObjectKind::StreamFeatureView
                | ObjectKind::OnDemandFeatureView
                | ObjectKind::LabelView => {
                    writes
                        .delete_feature_view(&client, name, project, false)
                        .await
                }
                _ => writes.delete(&client, kind, name, project, false).await,
            };
            done?;
            steps.push(Step {
                transition: Transition::Delete,
                kind,
                name: name.clone(),
            });
        }
    }
    if apply {
        writes.commit(&client).await?;
    } else {
        writes.abandon(&client);
    }
    Ok(steps)
}

/// Feast's plan text: a line per object changed (data sources and the dummy entity not
/// listed), or "No changes to registry".
pub fn render(steps: &[Step]) -> String {
    let lines: Vec<String> = steps
        .iter()
        .filter(|s| s.kind != ObjectKind::DataSource && s.name != "__dummy")
        .map(|s| s.to_string())
        .collect();
    if lines.is_empty() {
        "No changes to registry\n".to_owned()
    } else {
        lines.join("\n") + "\n"
    }
}
