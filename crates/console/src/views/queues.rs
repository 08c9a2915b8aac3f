//! MiniPaaS queues: the list with the charts of all queues, one queue's messages by state with the dead letters'
//! error history and their redrive / delete forms, and the confirmation page those forms lead to.

use chrono::Utc;
use maud::{Markup, html};
use pgstrata_ops::minipaas::{MessageState, QueueMessage};

use super::layout::{Section, page as frame_page};
use super::{Frame, age, badge, encode, num, pager, svg, when};
use crate::routes::{Confirm, QueuePage, Queues, queue_path};

fn not_installed() -> Markup {
    html! { p.empty { "MiniPaaS is not installed in this database: there are no queues or streams to show." } }
}

/// `/queues`.
pub(crate) fn list(frame: &Frame, q: &Queues) -> Markup {
    let base = if q.filter.is_empty() {
        "/queues".to_string()
    } else {
        format!("/queues?q={}", encode(&q.filter))
    };
    let content = html! {
        @if !q.installed { (not_installed()) } @else {
            div.charts {
                (svg::chart("Depth of all queues", &[("ready, delayed, waiting", "s1", &q.depth)], Utc::now()))
                (svg::chart("Enqueued per minute", &[("enqueued", "s2", &q.enqueued_per_minute)], Utc::now()))
            }
            form.filter method="get" action="/queues" {
                label { "Name contains " input type="search" name="q" value=(q.filter); }
                button type="submit" { "Search" }
                span.count { (num(q.total)) " queue(s)" }
            }
            @if q.queues.is_empty() {
                p.empty { "No queue matches." }
            } @else {
                table.queues id="queues" data-refresh="queues" {
                    thead { tr {
                        th { "Queue" } th.n { "Ready" } th.n { "Delayed" } th.n { "In flight" } th.n { "Waiting" }
                        th.n { "Dead" } th.n { "Done" } th.n { "Oldest ready" }
                    } }
                    tbody {
                        @for s in &q.queues {
                            tr {
                                td { a href=(queue_path(&s.name)) { (s.name) } }
                                td.n { (num(s.ready)) }
                                td.n { (num(s.delayed)) }
                                td.n { (num(s.in_flight + s.expired)) }
                                td.n { (num(s.waiting)) }
                                td.n { @if s.dead > 0 { span class="badge bad" { (num(s.dead)) } } @else { "0" } }
                                td.n { (num(s.done)) }
                                td.n { (age(s.oldest_ready_age_s)) }
                            }
                        }
                    }
                }
            }
            (pager(&base, q.page, q.pages))
        }
    };
    frame_page(frame, Section::Queues, "Queues", content)
}

/// A POST form with the CSRF token: a button that leads to the confirmation page.
fn action_form(frame: &Frame, action: &str, id: Option<i64>, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            input type="hidden" name="csrf" value=(frame.csrf);
            @if let Some(id) = id { input type="hidden" name="id" value=(id); }
            button type="submit" class=(class) { (label) }
        }
    }
}

fn message_row(frame: &Frame, name: &str, m: &QueueMessage) -> Markup {
    let dead = m.state == MessageState::Dead;
    html! {
        tr id={"m" (m.id)} {
            td.n { (m.id) }
            td.n { (m.priority) }
            td.n { (m.attempts) }
            td.t { (when(&m.enqueued_at)) }
            td.t {
                @if let Some(t) = m.finished_at { (when(&t)) }
                @else if let Some(t) = m.lease_until { "lease until " (when(&t)) }
                @else { "ready at " (when(&m.ready_at)) }
            }
            td {
                @if let Some(k) = &m.ordering_key { div.note { "ordering " code { (k) } } }
                @if let Some(k) = &m.dedup_key { div.note { "dedup " code { (k) } } }
                code.payload { (m.payload_preview) }
                @if (m.payload_bytes as usize) > m.payload_preview.len() { span.note { " … " (num(m.payload_bytes)) " bytes" } }
                @if let Some(serde_json::Value::Array(errors)) = &m.errors {
                    @if !errors.is_empty() {
                        details.errors open[dead] {
                            summary { (errors.len()) " error(s)" }
                            ol {
                                @for e in errors {
                                    li {
                                        @if let Some(a) = e.get("attempt") { "attempt " (a) ": " }
                                        @if let Some(at) = e.get("at").and_then(|v| v.as_str()) {
                                            span.note { (chrono::DateTime::parse_from_rfc3339(at).map_or_else(|_| at.to_string(), |t| when(&t.to_utc()))) " " }
                                        }
                                        (e.get("error").and_then(|v| v.as_str()).map_or_else(|| e.to_string(), str::to_string))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if dead && !frame.read_only {
                td.actions {
                    (action_form(frame, &format!("{}/redrive", queue_path(name)), Some(m.id), "Redrive", "secondary"))
                    (action_form(frame, &format!("{}/messages/{}/delete", queue_path(name), m.id), None, "Delete", "danger"))
                }
            }
        }
    }
}

/// `/queues/{name}`.
pub(crate) fn detail(frame: &Frame, p: &QueuePage) -> Markup {
    let q = &p.queue;
    let path = queue_path(&q.name);
    let title = format!("Queue {}", q.name);
    let now = Utc::now();
    let content = html! {
        @if let Some(a) = &p.done {
            @match &a.outcome {
                Ok(n) => p.flash.good role="status" { "Done: " (a.kind) ", " (n) " message(s) changed." },
                Err(e) => p.flash.bad role="alert" { (a.kind) " failed: " (e) },
            }
        }
        section.facts id="counts" data-refresh="counts" {
            dl {
                dt { "Ready" } dd.ready { (num(q.ready)) }
                dt { "Delayed" } dd.delayed { (num(q.delayed)) }
                dt { "In flight" } dd.in-flight { (num(q.in_flight)) @if q.expired > 0 { " (+" (num(q.expired)) " lease ran out)" } }
                dt { "Waiting" } dd.waiting { (num(q.waiting)) }
                dt { "Dead" } dd.dead { (num(q.dead)) }
                dt { "Done" } dd.done { (num(q.done)) }
                dt { "Oldest ready" } dd { (age(q.oldest_ready_age_s)) }
                @if let Some(d) = &q.dead_letter_queue {
                    dt { "Dead letters go to" } dd { a href=(queue_path(d)) { (d) } }
                }
            }
        }
        div.charts {
            (svg::chart("Depth", &[("ready, delayed, waiting", "s1", &p.depth)], now))
            (svg::chart("In flight and dead", &[("in flight", "s2", &p.in_flight), ("dead", "s3", &p.dead)], now))
        }
        nav.tabs {
            @for s in MessageState::ALL {
                @let label = format!("{} ({})", s.name(), num(s.count(q)));
                @if s == p.state { a.active href={(path) "?state=" (s.name())} aria-current="page" { (label) } }
                @else { a href={(path) "?state=" (s.name())} { (label) } }
            }
        }
        @if p.state == MessageState::Dead && q.dead > 0 && !frame.read_only {
            (action_form(frame, &format!("{path}/redrive"), None, &format!("Redrive all {} dead", num(q.dead)), "primary"))
        }
        @if p.messages.is_empty() {
            p.empty { "No " (p.state.name()) " message." }
        } @else {
            table.messages id="messages" {
                thead { tr {
                    th.n { "Id" } th.n { "Priority" } th.n { "Attempts" } th { "Enqueued" } th { "State since / until" } th { "Payload" }
                    @if p.state == MessageState::Dead && !frame.read_only { th { "Actions" } }
                } }
                tbody { @for m in &p.messages { (message_row(frame, &q.name, m)) } }
            }
        }
        (pager(&format!("{path}?state={}", p.state.name()), p.page, p.pages))
        @if !p.actions.is_empty() {
            h2 { "Done from this console" }
            ul.actions {
                @for a in &p.actions {
                    li {
                        (when(&a.at)) " " (badge(&a.kind.to_string())) " "
                        @if a.message_ids.is_empty() { "all dead messages" }
                        @else { "message(s) " (a.message_ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")) }
                        ": "
                        @match &a.outcome { Ok(n) => { (n) " changed" } Err(e) => { "failed: " (e) } }
                        span.note { " from " (a.client) }
                    }
                }
            }
        }
    };
    frame_page(frame, Section::Queues, &title, content)
}

/// The confirmation step of a redrive or delete.
pub(crate) fn confirm(frame: &Frame, c: &Confirm) -> Markup {
    let content = html! {
        p.question { (c.question) }
        form method="post" action=(c.action) {
            input type="hidden" name="csrf" value=(frame.csrf);
            input type="hidden" name="confirm" value="yes";
            @if let Some(id) = c.id { input type="hidden" name="id" value=(id); }
            button.danger type="submit" id="confirm" { "Yes, do it" }
            " "
            a href=(c.back) { "Cancel" }
        }
    };
    frame_page(frame, Section::Queues, "Confirm", content)
}
