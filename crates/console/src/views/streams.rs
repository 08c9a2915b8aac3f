//! MiniPaaS streams: the list with each consumer group's lag, and one stream's recent events.

use maud::{Markup, html};

use super::layout::{Section, page as frame_page};
use super::{Frame, age, encode, num, pager, when};
use crate::routes::{StreamPage, Streams};
use pgstrata_ops::minipaas::StreamState;

fn stream_path(name: &str) -> String {
    format!("/streams/{}", encode(name))
}

fn retention(s: &StreamState) -> String {
    match (&s.retention_age, s.retention_count) {
        (None, None) => "forever".to_string(),
        (Some(a), None) => a.clone(),
        (None, Some(c)) => format!("{} events per partition", num(c)),
        (Some(a), Some(c)) => format!("{a}, at most {} events per partition", num(c)),
    }
}

fn groups(s: &StreamState) -> Markup {
    html! {
        @if s.groups.is_empty() { span.note { "no consumer group" } }
        @for g in &s.groups {
            div {
                code { (g.group) } ": lag " (num(g.pending))
                @if g.pending > 0 { span.note { " (oldest " (age(g.oldest_pending_age_s)) ")" } }
                @if let Some(t) = &g.last_commit_at { span.note { ", committed " (when(t)) } }
            }
        }
    }
}

/// `/streams`.
pub(crate) fn list(frame: &Frame, s: &Streams) -> Markup {
    let base = if s.filter.is_empty() {
        "/streams".to_string()
    } else {
        format!("/streams?q={}", encode(&s.filter))
    };
    let content = html! {
        @if !s.installed {
            p.empty { "MiniPaaS is not installed in this database: there are no queues or streams to show." }
        } @else {
            form.filter method="get" action="/streams" {
                label { "Name contains " input type="search" name="q" value=(s.filter); }
                button type="submit" { "Search" }
                span.count { (num(s.total)) " stream(s)" }
            }
            @if s.streams.is_empty() {
                p.empty { "No stream matches." }
            } @else {
                table.streams id="streams" data-refresh="streams" {
                    thead { tr { th { "Stream" } th.n { "Partitions" } th.n { "Events" } th { "Retention" } th { "Consumer groups" } } }
                    tbody {
                        @for st in &s.streams {
                            tr {
                                td { a href=(stream_path(&st.name)) { (st.name) } }
                                td.n { (st.partitions) }
                                td.n { (num(st.events)) }
                                td { (retention(st)) }
                                td { (groups(st)) }
                            }
                        }
                    }
                }
            }
            (pager(&base, s.page, s.pages))
        }
    };
    frame_page(frame, Section::Streams, "Streams", content)
}

/// `/streams/{name}`.
pub(crate) fn detail(frame: &Frame, p: &StreamPage) -> Markup {
    let s = &p.stream;
    let title = format!("Stream {}", s.name);
    let content = html! {
        section.facts {
            dl {
                dt { "Partitions" } dd { (s.partitions) }
                dt { "Events held" } dd { (num(s.events)) }
                dt { "Retention" } dd { (retention(s)) }
                dt { "Consumer groups" } dd { (groups(s)) }
            }
        }
        h2 { "Recent events" }
        @if p.events.is_empty() {
            p.empty { "No event is held." }
        } @else {
            table.events id="events" data-refresh="events" {
                thead { tr { th.n { "Partition" } th.n { "Offset" } th { "Key" } th { "Published" } th { "Payload" } } }
                tbody {
                    @for e in &p.events {
                        tr {
                            td.n { (e.partition) }
                            td.n { (e.offset) }
                            td {
                                @if let Some(k) = &e.key { code { (k) } @if let Some(v) = e.key_version { span.note { " v" (v) } } }
                            }
                            td { (when(&e.published_at)) }
                            td {
                                code.payload { (e.payload_preview) }
                                @if (e.payload_bytes as usize) > e.payload_preview.len() { span.note { " … " (num(e.payload_bytes)) " bytes" } }
                            }
                        }
                    }
                }
            }
        }
        (pager(&stream_path(&s.name), p.page, p.pages))
    };
    frame_page(frame, Section::Streams, &title, content)
}
