//! The scenario corpus: `tests/corpus/<case>/{a.sql, b.sql, seed.sql}`, each case run in both directions against
//! PostgreSQL (a fresh database per side, from pgtest).
//!
//! A direction passes when, after applying the plan's up sections to the source:
//! - the source matches the target by a comparison **independent of the engine's model**: a fingerprint from its
//!   own catalog queries (`pg_describe_object`, `pg_get_*def`, column order ignored), and a normalised
//!   `pg_dump --schema-only` when the installed pg_dump is at least as new as the server;
//! - a second diff is empty;
//! - seeded rows survive (row counts of every table both sides have);
//! - the plan is gated whenever the target lacks a table or column the source has (checked independently);
//! - the down plan brings the source back to its original fingerprint.
//!
//! `seed_b.sql`, when present, seeds the target side for the reverse direction.
//! `CORPUS_CASE=substring` runs the matching cases only; `CORPUS_VERBOSE=1` prints every plan.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use pgstrata_catalog::{DiffOptions, Plan, ReadOptions, Renames, diff, read};
use tokio_postgres::Client;

#[path = "support/fingerprint.rs"]
mod fingerprint;

struct Case {
    name: String,
    a: String,
    b: String,
    seed: Option<String>,
    seed_b: Option<String>,
    renames: Renames,
    /// Names of objects the engine does not model, or keeps because an unmodelled object uses them (file
    /// `unmodeled`, one per line): they must be reported (or noted), and fingerprint lines naming them are left out
    /// of the comparison.
    unmodeled: Vec<String>,
    /// File `no_dump` (holding the reason): pg_dump cannot agree for this case, only the fingerprint judges.
    no_dump: bool,
    /// File `min_version` (a major version): the case uses syntax older servers lack.
    min_version: Option<i32>,
}

fn cases() -> Vec<Case> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let filter = std::env::var("CORPUS_CASE").ok();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .filter(|d| {
            filter.as_deref().is_none_or(|f| {
                d.file_name()
                    .is_some_and(|n| n.to_string_lossy().contains(f))
            })
        })
        .map(|d| {
            let read = |f: &str| std::fs::read_to_string(d.join(f)).ok();
            let b = read("b.sql").unwrap_or_default();
            Case {
                name: d
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                a: read("a.sql").unwrap_or_default(),
                renames: renames_of(&b),
                b,
                seed: read("seed.sql"),
                seed_b: read("seed_b.sql"),
                no_dump: d.join("no_dump").is_file(),
                min_version: read("min_version").and_then(|v| v.trim().parse().ok()),
                unmodeled: read("unmodeled")
                    .unwrap_or_default()
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect(),
            }
        })
        .collect()
}

/// `-- rename: table old new` / `-- rename: column table old new` lines of b.sql (the corpus's stand-in for the
/// declared files' `-- strata:renamed-from`, which the orchestration layer parses).
fn renames_of(sql: &str) -> Renames {
    let mut r = Renames::default();
    for line in sql.lines() {
        let Some(rest) = line.strip_prefix("-- rename: ") else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        let q = |s: &str| {
            let (schema, name) = s.split_once('.').unwrap_or(("public", s));
            pgstrata_catalog::QName::new(schema, name)
        };
        match words.as_slice() {
            ["table", old, new] => r.tables.push((q(old), q(new))),
            ["column", table, old, new] => {
                r.columns
                    .push((q(table), (*old).to_string(), (*new).to_string()))
            }
            _ => panic!("bad rename line: {line}"),
        }
    }
    r
}

fn reversed(r: &Renames) -> Renames {
    Renames {
        tables: r
            .tables
            .iter()
            .map(|(a, b)| (b.clone(), a.clone()))
            .collect(),
        columns: r
            .columns
            .iter()
            .map(|(t, a, b)| {
                // The table as named in the (new) target of the reverse direction.
                let table = r
                    .tables
                    .iter()
                    .find(|(_, new)| new == t)
                    .map_or_else(|| t.clone(), |(old, _)| old.clone());
                (table, b.clone(), a.clone())
            })
            .collect(),
    }
}

async fn load(client: &Client, sql: &str, what: &str) -> Result<(), String> {
    client
        .batch_execute(sql)
        .await
        .map_err(|e| format!("loading {what}: {}", pgstrata_catalog::describe(&e)))
}

async fn row_counts(client: &Client) -> BTreeMap<String, i64> {
    let rows = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname NOT LIKE 'pg\\_%'",
            &[],
        )
        .await
        .unwrap_or_default();
    let mut out = BTreeMap::new();
    for r in rows {
        let t: String = r.get(0);
        if let Ok(row) = client
            .query_one(&format!("SELECT count(*) FROM ONLY {t}"), &[])
            .await
        {
            out.insert(t, row.get::<_, i64>(0));
        }
    }
    out
}

fn show(plan: &Plan) -> String {
    let mut s = String::new();
    for sec in plan.sections() {
        s.push_str(if sec.no_transaction {
            "-- (no transaction)\n"
        } else {
            "-- (transaction)\n"
        });
        for st in sec.statements {
            s.push_str(&st);
            s.push('\n');
        }
    }
    s
}

/// One direction of a case. `Err` describes the first failed check.
async fn run_direction(
    from_sql: &str,
    to_sql: &str,
    seed: Option<&str>,
    renames: &Renames,
    unmodeled: &[String],
    no_dump: bool,
    label: &str,
) -> Result<(), String> {
    let strip = |fp: BTreeSet<String>| fingerprint::without(fp, unmodeled);
    let src_db = pgtest::TestDb::new().await;
    let dst_db = pgtest::TestDb::new().await;
    let src = src_db.client().await;
    let dst = dst_db.client().await;
    load(&src, from_sql, "the source").await?;
    if let Some(seed) = seed {
        load(&src, seed, "seed.sql").await?;
    }
    load(&dst, to_sql, "the target").await?;

    let before = strip(fingerprint::fingerprint(&src).await);
    let counts_before = row_counts(&src).await;
    let opts = ReadOptions::default();
    let a = read(&src, &opts)
        .await
        .map_err(|e| format!("reading the source: {e}"))?;
    let b = read(&dst, &opts)
        .await
        .map_err(|e| format!("reading the target: {e}"))?;
    let up = diff(
        &a,
        &b,
        &DiffOptions {
            renames: renames.clone(),
            ..DiffOptions::default()
        },
    )
    .map_err(|e| format!("planning up: {e}"))?;
    let down = diff(
        &b,
        &a,
        &DiffOptions {
            renames: reversed(renames),
            ..DiffOptions::default()
        },
    )
    .map_err(|e| format!("planning down: {e}"))?;
    if std::env::var_os("CORPUS_VERBOSE").is_some() {
        eprintln!(
            "=== {label} up:\n{}=== {label} down:\n{}",
            show(&up),
            show(&down)
        );
    }

    // Gating, judged independently: the target lacks a table or column the source has.
    let target_fp = strip(fingerprint::fingerprint(&dst).await);
    for name in unmodeled {
        let reported = up
            .unmodeled
            .iter()
            .chain(&down.unmodeled)
            .any(|u| u.identity.contains(name.as_str()))
            || up
                .notes
                .iter()
                .chain(&down.notes)
                .any(|n| n.contains(name.as_str()));
        if !reported {
            return Err(format!(
                "{name} is neither reported as unmodelled nor noted (reported: {:?}; notes: {:?} {:?})",
                up.unmodeled, up.notes, down.notes
            ));
        }
    }
    let lost = fingerprint::lost_relations(&before, &target_fp, renames);
    if !lost.is_empty() && up.data_loss().is_empty() {
        return Err(format!(
            "the target lacks {lost:?} but the plan is not gated as losing data:\n{}",
            show(&up)
        ));
    }

    pgstrata_catalog::apply(&src, &up.sections())
        .await
        .map_err(|e| format!("applying up: {e}\n--- plan:\n{}", show(&up)))?;
    let after = strip(fingerprint::fingerprint(&src).await);
    if let Some(d) = fingerprint::difference(&after, &target_fp) {
        return Err(format!(
            "after up, the source differs from the target:\n{d}\n--- plan:\n{}",
            show(&up)
        ));
    }
    if let Some(d) = fingerprint::dump_difference(&src_db, &dst_db, unmodeled).filter(|_| !no_dump)
    {
        return Err(format!(
            "after up, pg_dump differs:\n{d}\n--- plan:\n{}",
            show(&up)
        ));
    }
    let again = read(&src, &opts)
        .await
        .map_err(|e| format!("re-reading: {e}"))?;
    let second =
        diff(&again, &b, &DiffOptions::default()).map_err(|e| format!("second diff: {e}"))?;
    if !second.is_empty() {
        return Err(format!(
            "the second diff is not empty:\n{}--- first plan:\n{}",
            show(&second),
            show(&up)
        ));
    }
    let counts_after = row_counts(&src).await;
    for (t, n) in &counts_before {
        if let Some(m) = counts_after.get(t)
            && m != n
        {
            return Err(format!("table {t} had {n} rows, has {m} after up"));
        }
    }

    // Down restores the source's schema. After an up that lost data, the rows down would need are gone (a
    // foreign key may no longer validate): down is then judged on a fresh copy of the target.
    let (down_db, down_client);
    let on = if up.data_loss().is_empty() {
        &src
    } else {
        down_db = pgtest::TestDb::new().await;
        down_client = down_db.client().await;
        load(&down_client, to_sql, "the target (for down)").await?;
        &down_client
    };
    pgstrata_catalog::apply(on, &down.sections())
        .await
        .map_err(|e| format!("applying down: {e}\n--- down plan:\n{}", show(&down)))?;
    let restored = strip(fingerprint::fingerprint(on).await);
    if let Some(d) = fingerprint::difference(&restored, &before) {
        return Err(format!(
            "after down, the source differs from what it was:\n{d}\n--- down plan:\n{}",
            show(&down)
        ));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus() {
    let cases = cases();
    assert!(!cases.is_empty(), "no corpus case matches CORPUS_CASE");
    let major = {
        let db = pgtest::TestDb::new().await;
        let row = db
            .client()
            .await
            .query_one(
                "SELECT current_setting('server_version_num')::int / 10000",
                &[],
            )
            .await;
        row.map(|r| r.get::<_, i32>(0))
            .unwrap_or_else(|e| panic!("server version: {e}"))
    };
    let (cases, not_applicable): (Vec<Case>, Vec<Case>) = cases
        .into_iter()
        .partition(|c| c.min_version.is_none_or(|v| v <= major));
    for c in &not_applicable {
        eprintln!(
            "{}: needs PostgreSQL {} or later (server is {major})",
            c.name,
            c.min_version.unwrap_or(0)
        );
    }
    let mut failures: Vec<(String, String)> = Vec::new();
    let mut passed = 0;
    let total = cases.len() * 2;
    use futures_util::StreamExt;
    let results: Vec<_> = futures_util::stream::iter(cases.iter().map(|c| async move {
        let fwd = run_direction(
            &c.a,
            &c.b,
            c.seed.as_deref(),
            &c.renames,
            &c.unmodeled,
            c.no_dump,
            &format!("{} a→b", c.name),
        )
        .await;
        let back = run_direction(
            &c.b,
            &c.a,
            c.seed_b.as_deref(),
            &reversed(&c.renames),
            &c.unmodeled,
            c.no_dump,
            &format!("{} b→a", c.name),
        )
        .await;
        (c.name.clone(), fwd, back)
    }))
    .buffer_unordered(4)
    .collect()
    .await;
    for (name, fwd, back) in results {
        for (dir, r) in [("a→b", fwd), ("b→a", back)] {
            match r {
                Ok(()) => passed += 1,
                Err(e) => failures.push((format!("{name} {dir}"), e)),
            }
        }
    }
    for (name, e) in &failures {
        eprintln!("\n✗ {name}: {e}");
    }
    eprintln!("\ncorpus: {passed}/{total} directions pass");
    let failed: BTreeSet<&str> = failures.iter().map(|(n, _)| n.as_str()).collect();
    assert!(failures.is_empty(), "failing: {failed:?}");
}
