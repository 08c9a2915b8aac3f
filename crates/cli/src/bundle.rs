//! `strata export --to dbmate --bundle DIR`: one package as installable SQL files (see `pgstrata::bundle`).

use std::path::Path;

use pgstrata::{ExportFormat, Project};

use crate::Failure;
use crate::render::Out;

pub fn export(
    project: &Project,
    format: ExportFormat,
    dir: &Path,
    out: &Out,
) -> Result<(), Failure> {
    if format != ExportFormat::Dbmate {
        return Err(Failure::from(pgstrata::Error::Usage {
            message: format!("--bundle writes dbmate files, not {}", format.name()),
            help: Some(
                "use --to dbmate --bundle: the files are also valid for psql -f and Flyway".into(),
            ),
        }));
    }
    let bundle = pgstrata::bundle_project(project)?;
    let report = pgstrata::write_bundle(&bundle, dir)?;
    if out.is_json() {
        out.json_value(&serde_json::json!({ "bundle": bundle, "report": report }));
        return Ok(());
    }
    if out.is_quiet() {
        return Ok(());
    }
    for removed in &report.removed {
        println!("  - {} (no longer in the bundle)", removed.display());
    }
    for (file, path) in bundle.files.iter().zip(&report.files) {
        println!("  + {}  ({})", path.display(), file.sources.join(", "));
    }
    println!(
        "Bundled {} into {}: apply in this order ({}), roll back in reverse.",
        report.package,
        report.path.display(),
        bundle
            .files
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
