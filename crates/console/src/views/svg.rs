//! Line charts as inline SVG, drawn by the server: the last hour on the x axis, zero to the largest value on the
//! y axis. Colours come from the style sheet (classes), so the policy needs no inline style.

use chrono::{DateTime, Duration, Utc};
use maud::{Markup, html};

use crate::routes::Series;
use crate::sampler::WINDOW_MINUTES;

const W: f64 = 640.0;
const H: f64 = 160.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 20.0;
const TOP: f64 = 8.0;

/// A chart of `series` (label, CSS class, points) up to `now`: over the last hour, or since the first sample when
/// the console has run for less (at least a minute), so a young console's samples are not squeezed into a line.
pub(crate) fn chart(title: &str, series: &[(&str, &str, &Series)], now: DateTime<Utc>) -> Markup {
    let earliest = series
        .iter()
        .filter_map(|(_, _, s)| s.first().map(|(t, _)| *t))
        .min()
        .unwrap_or(now);
    let span_s = (now - earliest)
        .num_seconds()
        .clamp(60, WINDOW_MINUTES * 60);
    let start = now - Duration::seconds(span_s);
    let max = series
        .iter()
        .flat_map(|(_, _, s)| s.iter().map(|(_, v)| *v))
        .fold(0.0_f64, f64::max);
    let top = nice(max);
    // Gridlines at round values: fifths of 5, 50, …; quarters of 1, 2, 10, 20, ….
    let ticks: u8 = if (top / 10f64.powf(top.log10().floor()) - 5.0).abs() < 1e-9 {
        5
    } else {
        4
    };
    let x = |t: &DateTime<Utc>| {
        let secs = (*t - start).num_milliseconds() as f64 / 1000.0;
        LEFT + (secs / span_s as f64).clamp(0.0, 1.0) * (W - LEFT - 4.0)
    };
    let y = |v: f64| TOP + (1.0 - v / top) * (H - TOP - BOTTOM);
    let samples: usize = series.iter().map(|(_, _, s)| s.len()).max().unwrap_or(0);
    html! {
        figure.chart {
            figcaption {
                (title)
                @for (label, class, _) in series { " " span class={"key " (class)} { "■ " (label) } }
            }
            svg viewBox={"0 0 " (W) " " (H)} role="img" aria-label=(title) {
                @for i in 0..=ticks {
                    @let v = top * f64::from(i) / f64::from(ticks);
                    line.grid x1=(LEFT) x2=(W - 4.0) y1=(y(v)) y2=(y(v)) {}
                    text.axis x=(LEFT - 6.0) y=(y(v) + 4.0) text-anchor="end" { (label(v)) }
                }
                @for q in [4, 3, 2, 1, 0] {
                    @let ago = span_s * q / 4;
                    text.axis x=(x(&(now - Duration::seconds(ago)))) y=(H - 4.0)
                        text-anchor=(if q == 0 { "end" } else if q == 4 { "start" } else { "middle" }) {
                        (ago_label(ago))
                    }
                }
                @for (_, class, points) in series {
                    @if points.len() == 1 {
                        circle class=(class) cx=(x(&points[0].0)) cy=(y(points[0].1)) r="2.5" {}
                    } @else if points.len() > 1 {
                        polyline class=(class) points=(points.iter().map(|(t, v)| format!("{:.1},{:.1}", x(t), y(*v))).collect::<Vec<_>>().join(" ")) {}
                    }
                }
                @if samples == 0 {
                    text.axis x=(W / 2.0) y=(H / 2.0) text-anchor="middle" { "no samples yet: the console samples while it runs" }
                }
            }
        }
    }
}

/// `now`, `−30 s`, `−15 min`.
fn ago_label(seconds: i64) -> String {
    match seconds {
        0 => "now".to_string(),
        s if s < 120 => format!("−{s} s"),
        s => format!("−{} min", (s + 30) / 60),
    }
}

/// The next round number at or above `v` (1, 2, 5 × 10ⁿ), at least 1.
fn nice(v: f64) -> f64 {
    if v <= 1.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if v <= m * p {
            return m * p;
        }
    }
    10.0 * p
}

fn label(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{:.1}M", v / 1_000_000.0)
    } else if v >= 1000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_are_round() {
        assert_eq!(nice(0.0), 1.0);
        assert_eq!(nice(7.0), 10.0);
        assert_eq!(nice(12.0), 20.0);
        assert_eq!(nice(450.0), 500.0);
        assert_eq!(label(2500.0), "2.5k");
    }

    #[test]
    fn a_chart_draws_its_series() {
        let now = Utc::now();
        let s: Series = vec![(now - Duration::minutes(10), 4.0), (now, 8.0)];
        let svg = chart("depth", &[("ready", "s1", &s)], now).into_string();
        assert!(svg.contains("<polyline class=\"s1\""), "{svg}");
        assert!(svg.contains(">10<"), "the scale tops at 10: {svg}");
        assert!(
            svg.contains(">−10 min<") && svg.contains(">now<"),
            "since the first sample: {svg}"
        );
        assert!(
            svg.contains(">2.5<") && !svg.contains(">2<"),
            "quarters of 10: {svg}"
        );
        let s: Series = vec![(now, 5.0)];
        let svg = chart("depth", &[("ready", "s1", &s)], now).into_string();
        assert!(
            svg.contains(">1<") && svg.contains(">4<"),
            "fifths of 5: {svg}"
        );
    }
}
