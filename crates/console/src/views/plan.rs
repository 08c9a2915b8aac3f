//! `/plan`: what `strata up` would do now for the packages given on the command line, with the lock report, the
//! lint findings and the managed code's drift. Read only: the page plans, it never applies.

use maud::{Markup, html};
use pgstrata::managed::ObjectState;
use serde::Serialize;

use super::layout::{Section, page as frame_page};
use super::{Frame, badge, when};
use crate::routes::PlanPage;

/// The kebab-case name a value serialises to (the names the CLI's JSON uses).
fn name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The page.
pub(crate) fn page(frame: &Frame, p: &PlanPage) -> Markup {
    let content = html! {
        @if !p.packages_given {
            p.empty {
                "No package was given: start the console in a project directory, or with "
                code { "-p DIR" } ", to see what " code { "strata up" } " would do."
            }
        }
        @if let Some(plan) = &p.plan {
            h2 { "Pending migrations (" (plan.steps.len()) ")" }
            @if plan.steps.is_empty() {
                p.empty { "Nothing to apply: the database is up to date with the files." }
            } @else {
                ol.steps {
                    @for s in &plan.steps {
                        li {
                            code { (s.package) " / " (s.name) }
                            " " span.note { (s.path) }
                            @if s.no_transaction { " " (badge("no-transaction")) }
                            @if s.out_of_order { " " (badge("out-of-order")) }
                        }
                    }
                }
            }
            h2 { "Packages" }
            @for pkg in plan.packages.iter().filter(|p| !p.internal) {
                details open[pkg.migrations.iter().any(|m| name(&m.state) != "applied")] {
                    summary {
                        code { (pkg.name) } " (schema " code { (pkg.schema) } "): "
                        (pkg.migrations.len()) " migration(s), at "
                        code { (pkg.from.as_deref().unwrap_or("nothing yet")) }
                    }
                    table {
                        thead { tr { th { "Migration" } th { "State" } th { "Applied" } th { "Down" } } }
                        tbody {
                            @for m in &pkg.migrations {
                                tr {
                                    td { code { (m.name) } }
                                    td { (badge(&name(&m.state))) }
                                    td { (m.applied_at.as_ref().map(when).unwrap_or_default()) }
                                    td { @if m.has_down { "yes" } @else { "—" } }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(locks) = &p.locks {
            h2 { "Locks the pending migrations take" }
            @if locks.migrations.is_empty() {
                p.empty { "No pending statement locks, rewrites or scans a table." }
            }
            @for m in &locks.migrations {
                h3 { code { (m.package) " / " (m.migration) } @if m.no_transaction { " " (badge("no-transaction")) } }
                table {
                    thead { tr { th { "Line" } th { "Statement" } th { "Locks" } th { "Rewrite / scan" } } }
                    tbody {
                        @for s in &m.statements {
                            tr {
                                td.n { (m.path) ":" (s.line) ":" (s.column) }
                                td { code { (s.command) } br; span.note { (s.sql) } }
                                td {
                                    @for l in &s.locks {
                                        div { code { (l.relation) } " " (badge(&l.mode)) " " span.note { (l.blocks) } }
                                    }
                                }
                                td {
                                    @if let Some(r) = &s.rewrite { div { "rewrite: " (r) } }
                                    @if let Some(r) = &s.scan { div { "scan: " (r) } }
                                    @if let Some(n) = &s.note { div.note { (n) } }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(lint) = &p.lint {
            h2 { "Lint (" (lint.errors) " error(s), " (lint.warnings) " warning(s) in " (lint.files_checked) " file(s))" }
            @if lint.files.is_empty() { p.empty { "No finding." } }
            @for f in &lint.files {
                @for x in &f.findings {
                    div.finding {
                        (badge(&x.severity.to_string())) " "
                        code { (f.path) ":" (x.line) ":" (x.column) } " "
                        code { (x.rule) } " " (x.message)
                        @if let Some(h) = &x.help { div.note { "help: " (h) } }
                    }
                }
            }
        }
        @if p.packages_given {
            h2 { "Managed code" }
            @let changed: Vec<_> = p.code.iter()
                .flat_map(|c| c.objects.iter().filter(|o| o.state != ObjectState::InSync).map(move |o| (&c.package, o)))
                .collect();
            @if changed.is_empty() {
                p.empty { "Every managed object is in sync with its source." }
            } @else {
                table {
                    thead { tr { th { "Package" } th { "Object" } th { "State" } th { "Source" } } }
                    tbody {
                        @for (pkg, o) in changed {
                            tr {
                                td { (pkg) }
                                td { (o.kind) " " code { (o.name) } }
                                td { (badge(&name(&o.state))) }
                                td { code { (o.file) ":" (o.line) } }
                            }
                        }
                    }
                }
            }
        }
    };
    frame_page(frame, Section::Plan, "Plan", content)
}
