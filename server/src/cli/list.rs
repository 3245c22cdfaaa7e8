//! `<kind> list`: plain tables in the shape Feast prints (NAME first, two-space gaps).

use larder_registry::{
    model::{self, Catalog, ViewKind, has_all_tags},
    store::RegistrySnapshot,
};

type Tags = [(String, String)];

fn print_table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len() - 1;
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = *w));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row);
    }
}

pub fn entities(snapshot: &RegistrySnapshot, project: &str, tags: &Tags) -> anyhow::Result<()> {
    let c = Catalog::new(snapshot, project)?;
    let rows = c
        .entities
        .iter()
        .filter(|e| e.name != "__dummy" && has_all_tags(&e.tags, tags))
        .map(|e| {
            vec![
                e.name.clone(),
                e.description.clone(),
                format!("ValueType.{}", value_type_name(e.value_type)),
            ]
        })
        .collect();
    print_table(&["NAME", "DESCRIPTION", "TYPE"], rows);
    Ok(())
}

fn value_type_name(t: larder_protos::feast::types::value_type::Enum) -> &'static str {
    match t.as_str_name() {
        "INVALID" => "UNKNOWN",
        other => other,
    }
}

pub fn feature_views(
    snapshot: &RegistrySnapshot,
    project: &str,
    tags: &Tags,
) -> anyhow::Result<()> {
    let c = Catalog::new(snapshot, project)?;
    let rows = c
        .feature_views
        .iter()
        .filter(|v| {
            matches!(
                v.kind,
                ViewKind::FeatureView | ViewKind::OnDemandFeatureView
            )
        })
        .filter(|v| has_all_tags(&v.tags, tags))
        .map(|v| {
            // On-demand views list the entities of the views they read, as Feast does.
            let own_entities = v.entities.iter().any(|e| e != "__dummy");
            let sources: Vec<&str> = match &v.odfv {
                Some(o) if !own_entities => o.source_views.iter().map(String::as_str).collect(),
                _ => vec![v.name.as_str()],
            };
            let mut entities: Vec<&str> = Vec::new();
            for view in sources.iter().filter_map(|s| c.view(s)) {
                for e in view.entities.iter().filter(|e| *e != "__dummy") {
                    if !entities.contains(&e.as_str()) {
                        entities.push(e);
                    }
                }
            }
            vec![
                v.name.clone(),
                if entities.is_empty() {
                    "n/a".to_owned()
                } else {
                    entities.join(", ")
                },
                v.kind.as_str().to_owned(),
                if v.disabled { "No" } else { "Yes" }.to_owned(),
                v.state.as_str_name().to_owned(),
            ]
        })
        .collect();
    print_table(&["NAME", "ENTITIES", "TYPE", "ENABLED", "STATE"], rows);
    Ok(())
}

pub fn odfvs(
    snapshot: &RegistrySnapshot,
    project: &str,
    tags: &Tags,
    engines: &crate::service::ondemand::Engines,
) -> anyhow::Result<()> {
    let c = Catalog::new(snapshot, project)?;
    let rows = c
        .feature_views
        .iter()
        .filter(|v| v.kind == ViewKind::OnDemandFeatureView && has_all_tags(&v.tags, tags))
        .map(|v| {
            vec![
                v.name.clone(),
                crate::service::ondemand::engine(&c, v, engines).describe(),
            ]
        })
        .collect();
    print_table(&["NAME", "ENGINE"], rows);
    Ok(())
}

pub fn services(snapshot: &RegistrySnapshot, project: &str, tags: &Tags) -> anyhow::Result<()> {
    let c = Catalog::new(snapshot, project)?;
    let rows = c
        .feature_services
        .iter()
        .filter(|s| has_all_tags(&s.tags, tags))
        .map(|s| {
            let refs: Vec<String> = s
                .projections
                .iter()
                .flat_map(|p| {
                    p.features
                        .iter()
                        .map(move |f| format!("{}:{}", p.view, f.name))
                })
                .collect();
            vec![s.name.clone(), refs.join(", ")]
        })
        .collect();
    print_table(&["NAME", "FEATURES"], rows);
    Ok(())
}

pub fn data_sources(snapshot: &RegistrySnapshot, project: &str, tags: &Tags) -> anyhow::Result<()> {
    let c = Catalog::new(snapshot, project)?;
    let rows = c
        .data_sources
        .iter()
        .filter(|d| has_all_tags(&d.tags, tags))
        .map(|d| vec![d.name.clone(), format!("<class '{}'>", d.class_name())])
        .collect();
    print_table(&["NAME", "CLASS"], rows);
    Ok(())
}

pub fn projects(snapshot: &RegistrySnapshot, tags: &Tags) -> anyhow::Result<()> {
    let rows = model::projects(snapshot)
        .into_iter()
        .filter(|p| has_all_tags(&p.tags, tags))
        .map(|p| {
            let tags: Vec<String> = p
                .tags
                .iter()
                .map(|(k, v)| format!("'{k}': '{v}'"))
                .collect();
            vec![
                p.name,
                p.description,
                format!("{{{}}}", tags.join(", ")),
                p.owner,
            ]
        })
        .collect();
    print_table(&["NAME", "DESCRIPTION", "TAGS", "OWNER"], rows);
    Ok(())
}
