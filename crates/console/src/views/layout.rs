//! The frame of every page: title, navigation, the connection (without password), the style sheet and script.

use maud::{DOCTYPE, Markup, html};

use super::Frame;

/// The sections of the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Overview,
    Runs,
    Plan,
    Queues,
    Streams,
}

const NAV: [(Section, &str, &str); 5] = [
    (Section::Overview, "/", "Overview"),
    (Section::Runs, "/runs", "History"),
    (Section::Plan, "/plan", "Plan"),
    (Section::Queues, "/queues", "Queues"),
    (Section::Streams, "/streams", "Streams"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · strata console" }
            link rel="stylesheet" href="/assets/style.css";
            script src="/assets/console.js" defer {}
        }
    }
}

/// A whole page.
pub(crate) fn page(frame: &Frame, section: Section, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top {
                    a.brand href="/" { "strata " span { "console" } }
                    nav {
                        @for (s, href, label) in NAV {
                            @if s == section { a.active href=(href) aria-current="page" { (label) } }
                            @else { a href=(href) { (label) } }
                        }
                    }
                    span.target title="connection (password never shown)" { (frame.target) }
                    @if frame.read_only { span.badge.neutral { "read-only" } }
                }
                main {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// A page with only a message (errors, refusals).
pub(crate) fn message_page(title: &str, text: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top { a.brand href="/" { "strata " span { "console" } } }
                main.message {
                    h1 { (title) }
                    p { (text) }
                    p { a href="/" { "Back to the overview" } }
                }
            }
        }
    }
}
