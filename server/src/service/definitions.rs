//! `larder plan` and `larder apply` of a repo's YAML definitions
//! ([`larder_registry::definitions`]): the definitions are compared with the registry's
//! objects of the project, and each one created or changed is applied — through
//! [`RegistryWrites`], so every Feast rule of the registry server holds (created times kept,
//! feature-view versions, name conflicts) — and each object of the project that no file
//! defines is deleted, as `feast apply` deletes what the repo no longer has. All in one
//! revision-checked commit: a concurrent writer makes `apply` fail with nothing written.
//! The plan is printed as Feast's `feast plan` prints its registry diff (data sources are not
//! listed, as in Feast).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use larder_online::{layout::ViewLayout, store::OnlineStore};
use larder_protos::feast::core as pb;
use larder_registry::{
    cache::RegistryCache,
    clock::SystemClock,
    config::{OnlineStoreConfig, RepoConfig},
    definitions::{self, Definition, SECTIONS},
    model::{Catalog, ViewKind},
    store::{ObjectKind, RegistrySnapshot, RegistryStore},
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

/// One change of the online infra: a SQLite table created or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfraStep {
    pub transition: Transition,
    pub table: String,
}

/// A plan: the registry's changes, then the infra's.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub registry: Vec<Step>,
    pub infra: Vec<InfraStep>,
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

/// The online layouts of a registry's feature and stream views of the project, and of its
/// online label views (what Feast's SQLite store `plan` lists as tables).
fn view_layouts(
    config: &RepoConfig,
    snapshot: &RegistrySnapshot,
) -> anyhow::Result<BTreeMap<String, ViewLayout>> {
    let Ok(catalog) = Catalog::new(snapshot, config.project.as_str()) else {
        return Ok(BTreeMap::new());
    };
    Ok(catalog
        .feature_views
        .iter()
        .filter(|v| match v.kind {
            ViewKind::FeatureView | ViewKind::StreamFeatureView => true,
            ViewKind::LabelView => v.online,
            ViewKind::OnDemandFeatureView => false,
        })
        .map(|v| {
            let l = super::repo_layout(config, v);
            (l.sqlite_table.clone(), l)
        })
        .collect())
}

/// The infra Feast records for these layouts on a SQLite online store (none for others).
fn sqlite_infra(config: &RepoConfig, layouts: &BTreeMap<String, ViewLayout>) -> Option<pb::Infra> {
    let Some(OnlineStoreConfig::Sqlite(s)) = &config.online_store else {
        return None;
    };
    Some(pb::Infra {
        infra_objects: layouts
            .keys()
            .map(|table| pb::InfraObject {
                infra_object_class_type: "feast.infra.online_stores.sqlite.SqliteTable".into(),
                infra_object: Some(pb::infra_object::InfraObject::SqliteTable(
                    pb::SqliteTable {
                        path: s.path.display().to_string(),
                        name: table.clone(),
                    },
                )),
            })
            .collect(),
    })
}

fn infra_tables(infra: &pb::Infra) -> BTreeSet<String> {
    infra
        .infra_objects
        .iter()
        .filter_map(|o| match &o.infra_object {
            Some(pb::infra_object::InfraObject::SqliteTable(t)) => Some(t.name.clone()),
            _ => None,
        })
        .collect()
}

fn infra_steps(old: &BTreeSet<String>, new: &BTreeSet<String>) -> Vec<InfraStep> {
    new.difference(old)
        .map(|t| InfraStep {
            transition: Transition::Create,
            table: t.clone(),
        })
        .chain(old.difference(new).map(|t| InfraStep {
            transition: Transition::Delete,
            table: t.clone(),
        }))
        .collect()
}

/// The registry as read now, and a writer staging over it as one client.
struct Session {
    snapshot: Arc<RegistrySnapshot>,
    writes: RegistryWrites,
    client: Client,
    _alive: Arc<()>,
}

impl Session {
    async fn open(store: Arc<dyn RegistryStore>) -> anyhow::Result<Self> {
        let cache = Arc::new(
            RegistryCache::open_allowing_missing(store.clone(), 0, Arc::new(SystemClock)).await?,
        );
        let snapshot = cache.current().snapshot.clone();
        let writes = RegistryWrites::new(
            store,
            Arc::new(RegistryReads { cache }),
            Arc::new(SystemClock),
        );
        let alive = Arc::new(());
        let client = Client {
            id: 0,
            alive: Arc::downgrade(&alive),
        };
        Ok(Self {
            snapshot,
            writes,
            client,
            _alive: alive,
        })
    }
}

/// Plans (and with `apply`, applies) the repo's definitions: the registry's changes in one
/// revision-checked commit, then the online infra as `feast apply` updates it — the tables of
/// the project's feature and stream views prepared, those of deleted views dropped, and (on
/// SQLite) the tables recorded as the project's infra in a second commit, as Feast records
/// them after its registry commit.
pub async fn plan(
    config: &RepoConfig,
    store: Arc<dyn RegistryStore>,
    online: Option<Arc<dyn OnlineStore>>,
    apply: bool,
) -> anyhow::Result<Plan> {
    let project = config.project.as_str();
    let defs = definitions::load(&config.repo_path, project)?;
    let session = Session::open(store).await?;
    let (snapshot, writes, client) = (&session.snapshot, &session.writes, &session.client);
    let r = &snapshot.proto;
    let mut steps = Vec::new();
    let stored_project = r
        .projects
        .iter()
        .filter_map(|p| p.spec.clone())
        .find(|s| s.name == project);
    if stored_project.as_ref() != defs.project.spec.as_ref() {
        writes
            .apply(client, Apply::Project(defs.project.clone()), project, false)
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
                .apply(client, apply_of(kind, &d.bytes)?, project, false)
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
                        .delete_feature_view(client, name, project, false)
                        .await
                }
                _ => writes.delete(client, kind, name, project, false).await,
            };
            done?;
            steps.push(Step {
                transition: Transition::Delete,
                kind,
                name: name.clone(),
            });
        }
    }
    let old_layouts = view_layouts(config, snapshot)?;
    let old_tables = infra_tables(&snapshot.infra(project));
    if !apply {
        writes.abandon(client);
        // The views the definitions leave, under the names they have now.
        let mut desired = snapshot.proto.clone();
        desired
            .feature_views
            .retain(|v| v.spec.as_ref().is_some_and(|s| s.project != project));
        desired
            .stream_feature_views
            .retain(|v| v.spec.as_ref().is_some_and(|s| s.project != project));
        desired
            .label_views
            .retain(|v| v.spec.as_ref().is_some_and(|s| s.project != project));
        for d in &defs.objects {
            match d.kind {
                ObjectKind::FeatureView => desired
                    .feature_views
                    .push(pb::FeatureView::decode(d.bytes.as_slice())?),
                ObjectKind::StreamFeatureView => desired
                    .stream_feature_views
                    .push(pb::StreamFeatureView::decode(d.bytes.as_slice())?),
                ObjectKind::LabelView => desired
                    .label_views
                    .push(pb::LabelView::decode(d.bytes.as_slice())?),
                _ => {}
            }
        }
        if !desired
            .projects
            .iter()
            .any(|p| p.spec.as_ref().is_some_and(|s| s.name == project))
        {
            desired.projects.push(defs.project.clone());
        }
        let layouts = view_layouts(config, &RegistrySnapshot::from_proto(desired))?;
        let infra = match sqlite_infra(config, &layouts) {
            Some(infra) => infra_steps(&old_tables, &infra_tables(&infra)),
            None => Vec::new(),
        };
        return Ok(Plan {
            registry: steps,
            infra,
        });
    }
    writes.commit(client).await?;
    let snapshot = writes.reads.cache.current().snapshot.clone();
    let layouts = view_layouts(config, &snapshot)?;
    if let Some(online) = &online {
        for l in layouts.values() {
            online.prepare_view(l).await?;
        }
        for (table, l) in &old_layouts {
            if !layouts.contains_key(table) {
                online.drop_view(l).await?;
            }
        }
    }
    let mut infra = Vec::new();
    if let Some(desired) = sqlite_infra(config, &layouts) {
        infra = infra_steps(&old_tables, &infra_tables(&desired));
        if desired != snapshot.infra(project) {
            writes
                .update_infra(client, &desired.encode_to_vec(), project, true)
                .await?;
        }
    }
    Ok(Plan {
        registry: steps,
        infra,
    })
}

/// Feast's plan text: a line per object changed (data sources and the dummy entity not
/// listed), or "No changes to registry"; then a line per table, or "No changes to
/// infrastructure".
pub fn render(plan: &Plan) -> String {
    let lines: Vec<String> = plan
        .registry
        .iter()
        .filter(|s| s.kind != ObjectKind::DataSource && s.name != "__dummy")
        .map(|s| s.to_string())
        .collect();
    let mut out = if lines.is_empty() {
        "No changes to registry\n".to_owned()
    } else {
        lines.join("\n") + "\n"
    };
    if plan.infra.is_empty() {
        out.push_str("No changes to infrastructure\n");
    }
    for s in &plan.infra {
        let action = match s.transition {
            Transition::Delete => "Deleted",
            _ => "Created",
        };
        out.push_str(&format!("{action} sqlite table {}\n", s.table));
    }
    out
}

/// `larder teardown`: the project's online values (every view's table or keys dropped) and its
/// registry objects (the project deleted with everything in it), refused for a protected
/// project, as Feast's `teardown`. Unlike Feast, the registry's other projects and the other
/// projects' tables of a shared SQLite file stay (Feast deletes every project listed and the
/// whole database file). What was removed, as lines.
pub async fn teardown(
    config: &RepoConfig,
    store: Arc<dyn RegistryStore>,
    online: Option<Arc<dyn OnlineStore>>,
) -> anyhow::Result<Vec<String>> {
    let project = config.project.as_str();
    let session = Session::open(store).await?;
    let (snapshot, writes, client) = (&session.snapshot, &session.writes, &session.client);
    let stored = snapshot
        .proto
        .projects
        .iter()
        .filter_map(|p| p.spec.as_ref())
        .find(|s| s.name == project);
    if stored.is_some_and(|s| {
        s.tags
            .get("feast.dev/protected-project")
            .map(String::as_str)
            == Some("true")
    }) {
        anyhow::bail!(
            "Teardown is not allowed on protected project \"{project}\". Protected projects are \
             managed externally and cannot be torn down via Feast."
        );
    }
    let mut lines = Vec::new();
    if let Some(online) = &online {
        let catalog = Catalog::new(snapshot, project).ok();
        for v in catalog.iter().flat_map(|c| c.feature_views.iter()) {
            if v.kind == ViewKind::OnDemandFeatureView
                && v.odfv.as_ref().is_none_or(|o| !o.write_to_online_store)
            {
                continue;
            }
            let l = super::repo_layout(config, v);
            online.drop_view(&l).await?;
            lines.push(format!("Deleted the online values of view {}", v.name));
        }
    }
    if stored.is_some() {
        // The tables are gone: so is the infra that recorded them.
        if snapshot.infra(project) != pb::Infra::default() {
            writes
                .update_infra(
                    client,
                    &pb::Infra::default().encode_to_vec(),
                    project,
                    false,
                )
                .await?;
        }
        writes.delete_project(client, project, true).await?;
        lines.push(format!("Deleted project {project}"));
    }
    if lines.is_empty() {
        lines.push(format!("Nothing to tear down for project {project}"));
    }
    Ok(lines)
}
