//! Running the tests of a deploy (see the module docs of [`crate::run::test`]).

use std::collections::HashMap;
use std::time::Instant;

use postgres_protocol::escape::escape_identifier;
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::error::SqlState;

use super::TestOptions;
use super::shuffle::{new_seed, shuffle};
use crate::db::exec::object_error;
use crate::db::roles;
use crate::db::session::Session;
use crate::decide::code::{Code, CodeKind, TestFunction, TestRole};
use crate::error::{Error, Result};
use crate::report::ms;
use crate::report::test::{TestFailure, TestOutcome, TestReport, TestResult};
use crate::source::STRATA_PACKAGE;
use crate::source::package::Package;

/// Where a function's source is, to turn a PL/pgSQL "line N" into a file line.
struct Frame {
    file: String,
    line: u32,
    /// File line of the first line of the body (PL/pgSQL counts from there).
    body_line: Option<u32>,
}

/// Run the selected tests of `packages` inside the open transaction, leaving no trace.
pub(crate) async fn run(
    session: &mut Session<'_>,
    packages: &[Package],
    opts: &TestOptions,
) -> Result<TestReport> {
    let started = Instant::now();
    let seed = opts.seed.unwrap_or_else(new_seed);
    session.notices();
    session
        .client()
        .batch_execute("SAVEPOINT strata_tests")
        .await
        .map_err(Error::db("starting the test savepoint"))?;
    let mut report = TestReport {
        seed,
        results: Vec::new(),
        passed: 0,
        failed: 0,
        filtered_out: 0,
        duration_ms: 0.0,
    };
    let outcome = run_packages(session, packages, opts, seed, &mut report).await;
    // Whatever happened, the test functions and everything the tests did go away.
    let cleanup = session
        .client()
        .batch_execute("ROLLBACK TO SAVEPOINT strata_tests; RELEASE SAVEPOINT strata_tests")
        .await
        .map_err(Error::db("rolling the tests back"));
    session.forget_search_path();
    session.forget_role();
    outcome?;
    cleanup?;
    // Failures raised inside the packages' functions point at their source line (computed only when needed).
    if report.results.iter().any(|r| {
        r.failure
            .as_ref()
            .is_some_and(|f| f.context.is_some() && f.phase != "setup")
    }) {
        let frames = frames(packages);
        for r in &mut report.results {
            if let Some(f) = &mut r.failure
                && f.phase != "setup"
                && let Some(at) = f.context.as_deref().and_then(|c| locate(c, &frames))
            {
                f.location = Some(at);
            }
        }
    }
    report.passed = report
        .results
        .iter()
        .filter(|r| r.outcome == TestOutcome::Passed)
        .count();
    report.failed = report.results.len() - report.passed;
    report.duration_ms = ms(started.elapsed());
    Ok(report)
}

async fn run_packages(
    session: &mut Session<'_>,
    packages: &[Package],
    opts: &TestOptions,
    seed: u64,
    report: &mut TestReport,
) -> Result<()> {
    for (index, package) in packages.iter().enumerate() {
        if package.name() == STRATA_PACKAGE {
            continue;
        }
        let code = package.code();
        let mut selected: Vec<&TestFunction> = Vec::new();
        for t in code.tests.iter().filter(|t| t.role == TestRole::Test) {
            let schema = t.name.schema.as_deref().unwrap_or(package.schema());
            if opts.selects(package.name(), schema, &t.name.name) {
                selected.push(t);
            } else {
                report.filtered_out += 1;
            }
        }
        if selected.is_empty() {
            continue;
        }
        session
            .enter_package(package.schemas(), package.extensions())
            .await?;
        session.set_role(roles::role_of(package).as_deref()).await?;
        // A test is package code: the boundary check follows it (and fails it when it changed the role).
        let boundary = session.boundary(roles::role_of(package).as_deref()).await?;

        let failed_setup = create_functions(session, package, report).await?;
        // pgTAP's functions, if installed where this package's code sees them.
        let pgtap: bool = session.client()
            .query_one(
                "SELECT count(DISTINCT proname) = 2 FROM pg_catalog.pg_proc
                  WHERE proname IN ('no_plan', 'finish') AND pg_catalog.pg_function_is_visible(oid)",
                &[],
            )
            .await
            .map_err(Error::db("looking for pgTAP"))?
            .get(0);
        let signatures = signatures(session, package).await?;
        let befores: Vec<&TestFunction> = {
            let mut b: Vec<&TestFunction> = code
                .tests
                .iter()
                .filter(|t| t.role == TestRole::Before && !failed_setup.contains(&t.name.name))
                .collect();
            b.sort_by(|x, y| x.name.name.cmp(&y.name.name));
            b.dedup_by(|x, y| x.name.name == y.name.name);
            b
        };
        // Each package's order depends on the seed and its position, so one package's tests never reshuffle
        // another's.
        shuffle(&mut selected, seed.wrapping_add(index as u64));
        for t in selected {
            let result =
                run_one(session, package, t, &befores, &signatures, pgtap, &boundary).await?;
            report.results.push(result);
        }
    }
    Ok(())
}

/// Create the functions of the test files in dependency order. A function that cannot be created is reported as a
/// failed result (phase `setup`); the names of those are returned.
async fn create_functions(
    session: &mut Session<'_>,
    package: &Package,
    report: &mut TestReport,
) -> Result<Vec<String>> {
    let code = package.code();
    // All at once first (one round trip); one by one, in dependency order, only to find what failed.
    let mut batch = String::from("SAVEPOINT strata_test_setup;\n");
    for t in &code.tests {
        batch.push_str(&code.files[t.file].text[t.range.clone()]);
        batch.push_str("\n;\n");
    }
    batch.push_str("RELEASE SAVEPOINT strata_test_setup");
    if session.client().batch_execute(&batch).await.is_ok() {
        return Ok(Vec::new());
    }
    session
        .client()
        .batch_execute(
            "ROLLBACK TO SAVEPOINT strata_test_setup; RELEASE SAVEPOINT strata_test_setup",
        )
        .await
        .map_err(Error::db("rolling back the test functions"))?;
    session.notices();
    let order = crate::decide::code::test_order(code, package.schema(), package.schemas());
    let mut failed = Vec::new();
    for i in order {
        let t = &code.tests[i];
        let file = &code.files[t.file];
        let stmt = &file.text[t.range.clone()];
        let prefix = "SAVEPOINT strata_test_setup;\n";
        let sql = format!("{prefix}{stmt}\n;\nRELEASE SAVEPOINT strata_test_setup");
        if let Err(e) = session.client().batch_execute(&sql).await {
            let error = object_error(
                &file.display,
                &file.text,
                t.range.clone(),
                stmt,
                None,
                prefix.chars().count(),
                &e,
                None,
            );
            session
                .client()
                .batch_execute(
                    "ROLLBACK TO SAVEPOINT strata_test_setup; RELEASE SAVEPOINT strata_test_setup",
                )
                .await
                .map_err(Error::db("rolling back a failed test function"))?;
            let notices = session.notices();
            failed.push(t.name.name.clone());
            report.results.push(TestResult {
                package: package.name().to_string(),
                name: t.name.to_string(),
                file: file.display.clone(),
                line: t.line,
                outcome: TestOutcome::Failed,
                duration_ms: 0.0,
                notices,
                tap: Vec::new(),
                failure: Some(TestFailure {
                    phase: "setup".into(),
                    message: error.message.clone(),
                    sqlstate: Some(error.sqlstate.clone()),
                    detail: error.detail.clone(),
                    hint: error.hint.clone(),
                    context: error.context.clone(),
                    location: Some(format!("{}:{}", error.origin, error.line)),
                }),
            });
        }
    }
    Ok(failed)
}

/// Per function name of the package's schema: (callable without arguments, returns SETOF text).
/// For each test function (schema, name): whether it can be called without arguments, and whether it returns
/// `SETOF text` (pgTAP style).
async fn signatures(
    session: &Session<'_>,
    package: &Package,
) -> Result<HashMap<(String, String), (bool, bool)>> {
    let names: Vec<&str> = package
        .code()
        .tests
        .iter()
        .map(|t| t.name.name.as_str())
        .collect();
    let rows = session.client()
        .query(
            "SELECT n.nspname::text, p.proname::text, bool_or(p.pronargs = p.pronargdefaults),
                    bool_or(p.pronargs = p.pronargdefaults AND p.proretset AND p.prorettype = 'text'::regtype)
               FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = ANY($1) AND p.proname = ANY($2)
              GROUP BY n.nspname, p.proname",
            &[&package.schemas(), &names],
        )
        .await
        .map_err(Error::db("reading the signatures of test functions"))?;
    Ok(rows
        .iter()
        .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3))))
        .collect())
}

async fn run_one(
    session: &mut Session<'_>,
    package: &Package,
    t: &TestFunction,
    befores: &[&TestFunction],
    signatures: &HashMap<(String, String), (bool, bool)>,
    pgtap: bool,
    boundary: &crate::db::boundary::Boundary,
) -> Result<TestResult> {
    let code = package.code();
    let file = &code.files[t.file];
    let mut result = TestResult {
        package: package.name().to_string(),
        name: t.name.to_string(),
        file: file.display.clone(),
        line: t.line,
        outcome: TestOutcome::Passed,
        duration_ms: 0.0,
        notices: Vec::new(),
        tap: Vec::new(),
        failure: None,
    };
    let key = (
        t.name
            .schema
            .clone()
            .unwrap_or_else(|| package.schema().to_string()),
        t.name.name.clone(),
    );
    let Some(&(callable, tap)) = signatures.get(&key) else {
        // Its creation failed: already reported as a setup failure.
        result.outcome = TestOutcome::Failed;
        result.failure = Some(simple_failure(
            "setup",
            "the test function does not exist (its creation failed)",
            format!("{}:{}", file.display, t.line),
        ));
        return Ok(result);
    };
    if !callable {
        result.outcome = TestOutcome::Failed;
        result.failure = Some(simple_failure(
            "signature",
            "a test function must be callable without arguments",
            format!("{}:{}", file.display, t.line),
        ));
        return Ok(result);
    }
    let qualified = |f: &TestFunction| {
        format!(
            "{}.{}",
            escape_identifier(f.name.schema.as_deref().unwrap_or(package.schema())),
            escape_identifier(&f.name.name)
        )
    };
    session.notices();
    let started = Instant::now();
    let mut sql = String::from("SAVEPOINT strata_test;");
    if !befores.is_empty() {
        for b in befores {
            sql.push_str(&format!("SELECT {}();", qualified(b)));
        }
        if let Err(e) = session.client().batch_execute(&sql).await {
            rollback_test(session).await?;
            result.duration_ms = ms(started.elapsed());
            result.notices = session.notices();
            result.outcome = TestOutcome::Failed;
            let mut failure = failure_from(&e, &result);
            let which = befores
                .iter()
                .find(|b| {
                    failure
                        .context
                        .as_deref()
                        .is_some_and(|c| c.contains(&format!("{}(", b.name.name)))
                })
                .map(|b| b.name.to_string());
            failure.phase = match which {
                Some(name) => format!("before {name}"),
                None => "before".into(),
            };
            result.failure = Some(failure);
            return Ok(result);
        }
        sql.clear();
    }
    // Statements of the round trip, and whether their rows are the test's TAP output. With pgTAP installed, a
    // TAP test runs between no_plan() and finish(), as pgTAP's own runtests() does.
    let mut statements: Vec<(String, bool)> = Vec::new();
    if !sql.is_empty() {
        statements.push((sql.trim_end_matches(';').to_string(), false));
    }
    if tap && pgtap {
        statements.push(("SELECT * FROM no_plan()".into(), false));
    }
    if tap {
        statements.push((format!("SELECT * FROM {}()", qualified(t)), true));
    } else {
        statements.push((format!("SELECT {}()", qualified(t)), false));
    }
    if tap && pgtap {
        statements.push(("SELECT * FROM finish()".into(), true));
    }
    statements.push((boundary.check_sql(0, false), false));
    statements.push(("ROLLBACK TO SAVEPOINT strata_test".into(), false));
    statements.push(("RELEASE SAVEPOINT strata_test".into(), false));
    let text: Vec<&str> = statements.iter().map(|(s, _)| s.as_str()).collect();
    let outcome = session.client().simple_query(&text.join(";\n")).await;
    result.duration_ms = ms(started.elapsed());
    match outcome {
        Ok(messages) => {
            result.notices = session.notices();
            if tap {
                let mut rows = Vec::new();
                let mut index = 0;
                for m in &messages {
                    match m {
                        SimpleQueryMessage::Row(r)
                            if statements.get(index).is_some_and(|s| s.1) =>
                        {
                            // pgTAP puts diagnostics in the same row as the result, after newlines.
                            rows.extend(r.get(0).unwrap_or_default().lines().map(str::to_string));
                        }
                        SimpleQueryMessage::CommandComplete(_) => index += 1,
                        _ => {}
                    }
                }
                if let Some(failure) = tap_failure(&rows) {
                    result.outcome = TestOutcome::Failed;
                    result.failure = Some(TestFailure {
                        phase: "tap".into(),
                        message: failure,
                        sqlstate: None,
                        detail: None,
                        hint: None,
                        context: None,
                        location: Some(format!("{}:{}", result.file, result.line)),
                    });
                }
                result.tap = rows;
            }
        }
        Err(e) => {
            rollback_test(session).await?;
            result.notices = session.notices();
            result.outcome = TestOutcome::Failed;
            let mut failure = failure_from(&e, &result);
            if let Some(breach) = crate::db::boundary::Boundary::breach(&e) {
                failure.phase = "boundary".into();
                failure.message = breach.describe(boundary).0;
                failure.sqlstate = Some(SqlState::INSUFFICIENT_PRIVILEGE.code().to_string());
                failure.context = None;
            }
            result.failure = Some(failure);
        }
    }
    Ok(result)
}

async fn rollback_test(session: &mut Session<'_>) -> Result<()> {
    session
        .client()
        .batch_execute("ROLLBACK TO SAVEPOINT strata_test; RELEASE SAVEPOINT strata_test")
        .await
        .map_err(Error::db("rolling back a test"))
}

fn simple_failure(phase: &str, message: &str, location: String) -> TestFailure {
    TestFailure {
        phase: phase.into(),
        message: message.into(),
        sqlstate: None,
        detail: None,
        hint: None,
        context: None,
        location: Some(location),
    }
}

/// [`pgstrata_sql::versions::newer_server_hint`] for an error raised inside a test: the statement is the query the
/// server reports (inside the test's function), if any.
fn newer_server_hint(db: &tokio_postgres::error::DbError) -> Option<String> {
    let (query, at) = match db.position() {
        Some(tokio_postgres::error::ErrorPosition::Internal { position, query }) => (
            query.as_str(),
            Some(pgstrata_sql::char_position_to_byte(
                query,
                *position as usize,
            )),
        ),
        _ => ("", None),
    };
    pgstrata_sql::versions::newer_server_hint(query, at, db.code().code(), db.message())
}

/// A test's error. Its location is the test function until [`locate`] finds the innermost frame.
fn failure_from(e: &tokio_postgres::Error, result: &TestResult) -> TestFailure {
    match e.as_db_error() {
        Some(db) => TestFailure {
            phase: "test".into(),
            message: db.message().to_string(),
            sqlstate: Some(db.code().code().to_string()),
            detail: db.detail().map(str::to_string),
            // SQL only a newer server accepts (e.g. `min(xid8)` on 14): name the version.
            hint: newer_server_hint(db).or_else(|| db.hint().map(str::to_string)),
            context: db.where_().map(str::to_string),
            location: Some(format!("{}:{}", result.file, result.line)),
        },
        None => TestFailure {
            phase: "test".into(),
            message: format!("connection failure: {e}"),
            sqlstate: None,
            detail: None,
            hint: None,
            context: None,
            location: None,
        },
    }
}

/// The failing lines of pgTAP output: `not ok` lines (with their `#` diagnostics), or a plan that was not met.
fn tap_failure(lines: &[String]) -> Option<String> {
    let mut failing = Vec::new();
    let mut in_failure = false;
    let mut planned: Option<usize> = None;
    let mut seen = 0;
    for line in lines {
        let l = line.trim_start();
        if let Some(plan) = l.strip_prefix("1..") {
            planned = plan.split_whitespace().next().and_then(|n| n.parse().ok());
            in_failure = false;
        } else if l.starts_with("not ok") {
            seen += 1;
            let todo = l.contains("# TODO") || l.contains("# SKIP");
            in_failure = !todo;
            if !todo {
                failing.push(line.clone());
            }
        } else if l.starts_with("ok") {
            seen += 1;
            in_failure = false;
        } else if l.starts_with('#') && in_failure {
            failing.push(line.clone());
        }
    }
    if let Some(p) = planned
        && p != seen
        && failing.is_empty()
    {
        return Some(format!("planned {p} tests but ran {seen}"));
    }
    (!failing.is_empty()).then(|| failing.join("\n"))
}

/// Every function of the packages (test files and managed code), by (schema, name).
fn frames(packages: &[Package]) -> HashMap<(String, String), Frame> {
    let mut out = HashMap::new();
    for p in packages {
        let code: &Code = p.code();
        let add = |out: &mut HashMap<(String, String), Frame>,
                   name: &pgstrata_sql::objects::QualifiedName,
                   file: usize,
                   range: &std::ops::Range<usize>,
                   line: u32| {
            let f = &code.files[file];
            let text = &f.text[range.clone()];
            let body_line =
                pgstrata_sql::routine_body_range(text).map(|b| f.line_of(range.start + b.start));
            out.entry((
                name.schema
                    .clone()
                    .unwrap_or_else(|| p.schema().to_string()),
                name.name.clone(),
            ))
            .or_insert(Frame {
                file: f.display.clone(),
                line,
                body_line,
            });
        };
        for t in &code.tests {
            add(&mut out, &t.name, t.file, &t.range, t.line);
        }
        for o in &code.objects {
            if matches!(o.kind, CodeKind::Function | CodeKind::Procedure) {
                add(&mut out, &o.name, o.file, &o.range, o.line);
            }
        }
    }
    out
}

/// The file:line of the innermost frame of a CONTEXT that is one of the packages' functions.
fn locate(context: &str, frames: &HashMap<(String, String), Frame>) -> Option<String> {
    for line in context.lines() {
        let (name, plpgsql_line) = if let Some(rest) = line.strip_prefix("PL/pgSQL function ") {
            let name = rest.split('(').next()?;
            let n = rest
                .find(" line ")
                .and_then(|i| rest[i + 6..].split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse::<u32>().ok());
            (name.to_string(), n)
        } else if let Some(rest) = line.strip_prefix("SQL function \"") {
            (rest.split('"').next()?.to_string(), None)
        } else {
            continue;
        };
        let (schema, bare) = match name.rsplit_once('.') {
            Some((s, n)) => (Some(unquote(s)), unquote(n)),
            None => (None, unquote(&name)),
        };
        let frame = frames
            .iter()
            .find(|((s, n), _)| *n == bare && schema.as_ref().is_none_or(|want| want == s))
            .map(|(_, f)| f);
        if let Some(f) = frame {
            let at = match (plpgsql_line, f.body_line) {
                (Some(n), Some(body)) => body + n.saturating_sub(1),
                _ => f.line,
            };
            return Some(format!("{}:{at}", f.file));
        }
    }
    None
}

fn unquote(s: &str) -> String {
    match s.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_lines() {
        let ok = ["1..2", "ok 1 - a", "ok 2 - b"].map(String::from);
        assert_eq!(tap_failure(&ok), None);
        let bad = [
            "1..2",
            "ok 1 - a",
            "not ok 2 - b",
            "# Failed test 2: \"b\"",
            "#   have: 1",
            "#   want: 2",
        ]
        .map(String::from);
        assert_eq!(
            tap_failure(&bad).as_deref(),
            Some("not ok 2 - b\n# Failed test 2: \"b\"\n#   have: 1\n#   want: 2")
        );
        let todo = ["not ok 1 - x # TODO later"].map(String::from);
        assert_eq!(tap_failure(&todo), None);
        let short = ["1..3", "ok 1"].map(String::from);
        assert_eq!(
            tap_failure(&short).as_deref(),
            Some("planned 3 tests but ran 1")
        );
    }

    #[test]
    fn contexts_map_to_files() {
        let mut frames = HashMap::new();
        frames.insert(
            ("app".to_string(), "b_test".to_string()),
            Frame {
                file: "t_test.sql".into(),
                line: 10,
                body_line: Some(12),
            },
        );
        assert_eq!(
            locate("PL/pgSQL function app.b_test() line 3 at RAISE", &frames).as_deref(),
            Some("t_test.sql:14")
        );
        assert_eq!(
            locate(
                "SQL statement \"SELECT 1\"\nPL/pgSQL function b_test() line 1 at PERFORM",
                &frames
            )
            .as_deref(),
            Some("t_test.sql:12")
        );
        assert_eq!(
            locate("PL/pgSQL function other.b_test() line 1", &frames),
            None
        );
    }
}
