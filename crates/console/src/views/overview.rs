//! The overview: the server, the packages with their drift, the last runs, and the `inspect` verdicts.

use maud::{Markup, html};
use pgstrata_ops::inspect::{CheckOutcome, Details};

use super::layout::{Section, page as frame_page};
use super::{Frame, badge, ms, when};
use crate::routes::Overview;

/// The page.
pub(crate) fn page(frame: &Frame, o: &Overview) -> Markup {
    let strata = o.inspection.as_ref().and_then(|r| {
        r.checks.iter().find_map(|c| match &c.outcome {
            CheckOutcome::Ran(f) => match &f.details {
                Details::Strata(s) => Some(s),
                _ => None,
            },
            _ => None,
        })
    });
    let content = html! {
        section.facts {
            dl {
                dt { "Database" } dd { (o.database) }
                dt { "Role" } dd { (o.user) }
                dt { "Server" } dd { "PostgreSQL " (o.server_version) }
                dt { "Packages" } dd {
                    @if o.project { "compared with the files given on the command line" }
                    @else { "read from the database alone (give -p DIR to compare with the files)" }
                }
            }
        }
        h2 { "Packages" }
        @match strata {
            Some(s) if !s.packages.is_empty() => {
                table.packages {
                    thead { tr {
                        th { "Package" } th { "Schema" } th.n { "Applied" } th.n { "Pending" }
                        th.n { "Changed or missing" } th.n { "Drifted objects" } th.n { "Code pending" } th { "Last applied" }
                    } }
                    tbody {
                        @for p in &s.packages {
                            tr {
                                td { a href={"/runs?package=" (super::encode(&p.name))} { (p.name) } }
                                td { code { (p.schema) } }
                                td.n { (p.applied) }
                                td.n { (opt_count(p.pending, "pending")) }
                                td.n { (opt_count(p.changed_or_missing, "changed")) }
                                td.n { (opt_count(p.drifted, "drifted")) }
                                td.n { (opt_count(p.code_pending, "pending")) }
                                td { (p.last_applied_at.as_ref().map(when).unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
            Some(_) => p.empty { "No package is recorded in this database yet." }
            None => p.empty {
                @if let Some(e) = &o.inspection_error { "The inspection failed: " (e) }
                @else { "The first inspection is running; this page shows it once it is done." }
            }
        }
        h2 { "Last runs " small { a href="/runs" { "all runs →" } } }
        (super::runs::table(&o.runs))
        h2 { "Inspect verdicts" }
        @if let Some(r) = &o.inspection {
            p.note { "Inspected at " (when(&r.started_at)) " in " (ms(r.duration_ms)) "; worst verdict " (badge(&r.worst().to_string())) }
            table.checks {
                thead { tr { th { "Check" } th { "Group" } th { "Verdict" } th { "Summary" } } }
                tbody {
                    @for c in &r.checks {
                        tr {
                            td { code { (c.check.name()) } }
                            td { (c.group.name()) }
                            @match &c.outcome {
                                CheckOutcome::Ran(f) => { td { (badge(&f.verdict.to_string())) } td { (f.summary) } }
                                CheckOutcome::Skipped { reason } => { td { (badge("skipped")) } td { (reason) } }
                                CheckOutcome::Failed { error, .. } => { td { (badge("failed")) } td { (error) } }
                            }
                        }
                    }
                }
            }
        } @else if let Some(e) = &o.inspection_error {
            p.empty { "The inspection failed: " (e) }
        } @else {
            p.empty { "The first inspection is running." }
        }
    };
    frame_page(frame, Section::Overview, "Overview", content)
}

/// A count known only with the files: `—` without them, a badge when not zero.
fn opt_count(n: Option<i64>, what: &str) -> Markup {
    html! {
        @match n {
            None => span.off title="known only with the package files" { "—" },
            Some(0) => "0",
            Some(n) => span class="badge warn" title=(what) { (n) },
        }
    }
}
