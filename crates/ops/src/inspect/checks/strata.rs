//! Strata's own view: per package the applied migrations and managed objects, the last run and the last failure —
//! one query over the `strata` schema. With the project's files at hand, pending migrations and drifted managed
//! code come from pgstrata's `plan` and `managed::status` (the same answers as `strata status`).

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::details::{Details, PackageState, RunState, StrataState};
use super::{CheckError, CheckResult, Ctx};
use crate::inspect::{Findings, Verdict};

const STRATA_SQL: &str = "
SELECT coalesce((
           SELECT json_agg(x ORDER BY x.name) FROM (
               SELECT p.name, p.schema_name AS schema,
                      (SELECT count(*) FROM strata.migration m WHERE m.package = p.name) AS applied,
                      (SELECT max(m.applied_at) FROM strata.migration m WHERE m.package = p.name) AS last_applied_at,
                      (SELECT count(*) FROM strata.managed_object o WHERE o.package = p.name) AS managed_objects
                 FROM strata.package p
           ) x), '[]'::json),
       (SELECT row_to_json(r) FROM (
            SELECT id, command, outcome, started_at, finished_at, error, db_user
              FROM strata.run ORDER BY id DESC LIMIT 1) r),
       (SELECT row_to_json(r) FROM (
            SELECT id, command, outcome, started_at, finished_at, error, db_user
              FROM strata.run WHERE outcome = 'failed' ORDER BY id DESC LIMIT 1) r)";

#[derive(Deserialize)]
struct RawPackage {
    name: String,
    schema: String,
    applied: i64,
    last_applied_at: Option<DateTime<Utc>>,
    managed_objects: i64,
}

fn json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, CheckError> {
    serde_json::from_value(v)
        .map_err(|e| CheckError::Unexpected(format!("reading Strata's history: {e}")))
}

pub(super) async fn check(ctx: &Ctx<'_>) -> CheckResult {
    let rows = ctx.query(STRATA_SQL, &[]).await?;
    let Some(row) = rows.first() else {
        return Err(CheckError::Unexpected(
            "the history query returned no row".into(),
        ));
    };
    let raw: Vec<RawPackage> = json(row.try_get(0)?)?;
    let last_run: Option<RunState> = row
        .try_get::<_, Option<serde_json::Value>>(1)?
        .map(json)
        .transpose()?;
    let last_failure: Option<RunState> = row
        .try_get::<_, Option<serde_json::Value>>(2)?
        .map(json)
        .transpose()?;
    let mut packages: Vec<PackageState> = raw
        .into_iter()
        .map(|p| PackageState {
            name: p.name,
            schema: p.schema,
            applied: p.applied,
            last_applied_at: p.last_applied_at,
            managed_objects: p.managed_objects,
            pending: None,
            changed_or_missing: None,
            drifted: None,
            code_pending: None,
        })
        .collect();
    let mut notes = Vec::new();
    match ctx.project {
        Some(project) => compare_with_files(ctx, project, &mut packages).await?,
        None => notes.push(
            "pending migrations and drift need the package files: run in a package directory or pass -p".into(),
        ),
    }

    let sum = |f: fn(&PackageState) -> Option<i64>| packages.iter().filter_map(f).sum::<i64>();
    let pending = sum(|p| p.pending);
    let changed = sum(|p| p.changed_or_missing);
    let drifted = sum(|p| p.drifted);
    let code_pending = sum(|p| p.code_pending);
    let applied: i64 = packages.iter().map(|p| p.applied).sum();

    let mut verdict = Verdict::Ok;
    let mut parts = vec![format!(
        "{} package(s), {applied} migration(s) applied",
        packages.len()
    )];
    if ctx.project.is_some() {
        parts.push(format!("{pending} pending"));
        if changed > 0 {
            parts.push(format!("{changed} changed or missing on disk"));
        }
        if drifted > 0 {
            parts.push(format!(
                "{drifted} managed object(s) changed outside Strata"
            ));
        }
        if code_pending > 0 {
            parts.push(format!("{code_pending} managed object(s) to install"));
        }
        if pending + changed + drifted + code_pending > 0 {
            verdict = Verdict::Warning;
        }
    }
    match &last_run {
        Some(run) => {
            parts.push(format!(
                "last run #{} {} {} at {}",
                run.id,
                run.command,
                run.outcome,
                run.started_at.format("%Y-%m-%d %H:%M UTC")
            ));
            if run.outcome == "failed" {
                verdict = Verdict::Problem;
            } else if run.outcome == "running" {
                verdict = verdict.max(Verdict::Warning);
                notes.push(format!(
                    "run #{} is still marked running: a deploy is in progress, or it was killed before recording its \
                     end",
                    run.id
                ));
            }
        }
        None => parts.push("no runs recorded".into()),
    }
    if let Some(f) = &last_failure
        && last_run.as_ref().is_some_and(|r| r.id != f.id)
    {
        notes.push(format!(
            "last failure: run #{} {} at {}: {}",
            f.id,
            f.command,
            f.started_at.format("%Y-%m-%d %H:%M UTC"),
            f.error.as_deref().unwrap_or("(no message)")
        ));
    }
    Ok(Findings {
        verdict,
        summary: parts.join(", "),
        notes,
        limited: Vec::new(),
        details: Details::Strata(StrataState {
            packages,
            last_run,
            last_failure,
        }),
    })
}

/// Pending / changed / missing migrations and managed-code states from pgstrata, per package. Packages of the
/// project not yet deployed are added with nothing applied.
async fn compare_with_files(
    ctx: &Ctx<'_>,
    project: &pgstrata::Project,
    packages: &mut Vec<PackageState>,
) -> Result<(), CheckError> {
    use pgstrata::MigrationState as M;
    use pgstrata::managed::ObjectState as O;

    let plan = pgstrata::plan(ctx.db, project, &pgstrata::PlanOptions::default())
        .await
        .map_err(CheckError::Strata)?;
    let code = pgstrata::managed::status(ctx.db, project)
        .await
        .map_err(CheckError::Strata)?;
    for p in &plan.packages {
        let state = match packages.iter_mut().position(|s| s.name == p.name) {
            Some(i) => &mut packages[i],
            None => {
                packages.push(PackageState {
                    name: p.name.clone(),
                    schema: p.schema.clone(),
                    applied: 0,
                    last_applied_at: None,
                    managed_objects: 0,
                    pending: None,
                    changed_or_missing: None,
                    drifted: None,
                    code_pending: None,
                });
                let last = packages.len() - 1;
                &mut packages[last]
            }
        };
        let count =
            |f: &dyn Fn(M) -> bool| p.migrations.iter().filter(|m| f(m.state)).count() as i64;
        state.pending = Some(count(&|s| matches!(s, M::Pending | M::OutOfOrder)));
        state.changed_or_missing = Some(count(&|s| matches!(s, M::Changed | M::Missing)));
        let objects = code.iter().find(|c| c.package == p.name);
        state.drifted =
            Some(objects.map_or(0, |c| (c.count(O::Drifted) + c.count(O::Missing)) as i64));
        state.code_pending = Some(objects.map_or(0, |c| {
            (c.count(O::New) + c.count(O::Changed) + c.count(O::Removed)) as i64
        }));
    }
    Ok(())
}
