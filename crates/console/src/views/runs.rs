//! The history: a page of runs with its filter, and one run with its migrations and their SQL.

use maud::{Markup, html};
use pgstrata::RunOutcome;
use pgstrata::history::RunRecord;

use super::layout::{Section, page as frame_page};
use super::{Frame, badge, encode, ms, num, pager, when};
use crate::routes::{Run, Runs};

fn duration(r: &RunRecord) -> String {
    r.finished_at
        .map(|f| ms((f - r.started_at).num_microseconds().unwrap_or(0) as f64 / 1000.0))
        .unwrap_or_else(|| "—".to_string())
}

/// The first line of an error, for listings.
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// A table of runs, each linking to its page.
pub(crate) fn table(runs: &[RunRecord]) -> Markup {
    html! {
        @if runs.is_empty() {
            p.empty { "No run is recorded." }
        } @else {
            table.runs data-refresh="runs" id="runs" {
                thead { tr {
                    th.n { "Run" } th { "Command" } th { "Outcome" } th { "Started" } th.n { "Took" } th { "Role" } th { "Error" }
                } }
                tbody {
                    @for r in runs {
                        tr {
                            td.n { a href={"/runs/" (r.id)} { "#" (r.id) } }
                            td { code { (r.command) } }
                            td { (badge(r.outcome.as_str())) }
                            td.t { (when(&r.started_at)) }
                            td.n { (duration(r)) }
                            td { (r.db_user) }
                            td.error { (r.error.as_deref().map(first_line).unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}

/// `/runs`.
pub(crate) fn list(frame: &Frame, r: &Runs) -> Markup {
    let mut base = "/runs".to_string();
    let mut params = Vec::new();
    if let Some(p) = &r.package {
        params.push(format!("package={}", encode(p)));
    }
    if let Some(o) = r.outcome {
        params.push(format!("outcome={}", o.as_str()));
    }
    if !params.is_empty() {
        base = format!("{base}?{}", params.join("&"));
    }
    let content = html! {
        form.filter method="get" action="/runs" {
            label { "Package "
                select name="package" {
                    option value="" { "any" }
                    @for p in &r.packages {
                        option value=(p) selected[r.package.as_deref() == Some(p.as_str())] { (p) }
                    }
                }
            }
            label { "Outcome "
                select name="outcome" {
                    option value="" { "any" }
                    @for o in RunOutcome::ALL {
                        option value=(o.as_str()) selected[r.outcome == Some(o)] { (o.as_str()) }
                    }
                }
            }
            button type="submit" { "Filter" }
            span.count { (num(r.runs.total)) " run(s)" }
        }
        (table(&r.runs.runs))
        (pager(&base, r.page, r.pages))
    };
    frame_page(frame, Section::Runs, "History", content)
}

/// `/runs/{id}`.
pub(crate) fn detail(frame: &Frame, r: &Run) -> Markup {
    let run = &r.run.run;
    let title = format!("Run #{}", run.id);
    let content = html! {
        section.facts {
            dl {
                dt { "Command" } dd { code { (run.command) } }
                dt { "Outcome" } dd { (badge(run.outcome.as_str())) }
                dt { "Started" } dd { (when(&run.started_at)) }
                dt { "Took" } dd { (duration(run)) }
                dt { "Database role" } dd { (run.db_user) }
                dt { "Deployed by" } dd {
                    (r.run.os_user.as_deref().unwrap_or("unknown user"))
                    " on " (r.run.client_host.as_deref().unwrap_or("an unknown host"))
                }
                dt { "Strata" } dd { (r.run.strata_version) }
            }
        }
        @if let Some(e) = &run.error {
            h2 { "Error" }
            pre.error { (e) }
        }
        h2 { "Migrations (" (r.migrations.len()) ")" }
        @if r.migrations.is_empty() {
            p.empty { "This run applied, reverted or recorded no migration." }
        }
        @for m in &r.migrations {
            article.migration {
                h3 {
                    (badge(&m.action)) " " code { (m.package) " / " (m.name) }
                }
                p.note {
                    (when(&m.at))
                    @if let Some(d) = m.duration_ms { " · took " (ms(d)) }
                    @if let Some(by) = &m.applied_by { " · by " (by) }
                    @if let Some(p) = &m.path { " · " code { (p) } }
                }
                @match &m.up_sql {
                    Some(sql) => { details open { summary { "Up SQL" } (super::sql::block(sql)) } }
                    None => { p.note { "Up SQL: not kept (the migration is no longer applied)." } }
                }
                @if let Some(sql) = &m.down_sql {
                    details { summary { "Down SQL" } (super::sql::block(sql)) }
                }
            }
        }
        @if let Some(detail) = &run.detail {
            h2 { "Detail" }
            pre { (serde_json::to_string_pretty(detail).unwrap_or_default()) }
        }
    };
    frame_page(frame, Section::Runs, &title, content)
}
