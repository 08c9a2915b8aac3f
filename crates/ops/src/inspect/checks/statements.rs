//! The top statements of `pg_stat_statements` (when the extension is installed and loaded).

use postgres_protocol::escape::escape_identifier;

use super::details::{Details, Statement};
use super::{CheckError, CheckResult, Ctx, pretty_age};
use crate::inspect::{Findings, Verdict};

/// This database's statements by total execution time (`total_exec_time` since pg_stat_statements 1.8, which
/// every supported server ships). The extension lives in whatever schema it was created in.
fn statements_sql(schema: &str) -> String {
    format!(
        "SELECT s.query, r.rolname::text, s.calls, s.total_exec_time, s.mean_exec_time, s.rows,
       s.total_exec_time / nullif(sum(s.total_exec_time) OVER (), 0)
  FROM {}.pg_stat_statements s
  LEFT JOIN pg_catalog.pg_roles r ON r.oid = s.userid
 WHERE s.dbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = current_database())
 ORDER BY s.total_exec_time DESC
 LIMIT $1",
        escape_identifier(schema)
    )
}

pub(super) async fn check(ctx: &Ctx<'_>) -> CheckResult {
    let Some(schema) = &ctx.access.pg_stat_statements_schema else {
        return Err(CheckError::Unexpected(
            "pg_stat_statements is not installed".into(),
        ));
    };
    let rows = ctx.query(&statements_sql(schema), &[&ctx.top()]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(Statement {
            query: r.try_get(0)?,
            user: r.try_get(1)?,
            calls: r.try_get(2)?,
            total_ms: r.try_get(3)?,
            mean_ms: r.try_get(4)?,
            rows: r.try_get(5)?,
            share: r.try_get::<_, Option<f64>>(6)?.unwrap_or(0.0),
        });
    }
    let slow_ms = ctx.settings.slow_statement.0 as f64;
    let slow = out.iter().filter(|s| s.mean_ms >= slow_ms).count();
    let verdict = if slow > 0 {
        Verdict::Warning
    } else {
        Verdict::Ok
    };
    let summary = match out.first() {
        None => "no statements recorded for this database yet".to_string(),
        Some(top) => {
            let mut s = format!(
                "top statement takes {:.0}% of the execution time ({} calls, {} in total)",
                top.share * 100.0,
                top.calls,
                pretty_age(top.total_ms / 1000.0)
            );
            if slow > 0 {
                s.push_str(&format!(
                    "; {slow} of the top {} average {}+ per call",
                    out.len(),
                    ctx.settings.slow_statement
                ));
            }
            s
        }
    };
    Ok(Findings {
        verdict,
        summary,
        notes: Vec::new(),
        limited: Vec::new(),
        details: Details::Statements(out),
    })
}
