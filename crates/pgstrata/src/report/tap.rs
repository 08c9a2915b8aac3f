//! Test reports as TAP (version 13, with YAML diagnostics) and JUnit XML. JSON is the report's `serde` form.

use std::fmt::Write as _;

use super::test::{TestOutcome, TestReport};

/// The report as TAP version 13.
///
/// ```
/// let report = pgstrata::testing::TestReport {
///     seed: 7, results: vec![], passed: 0, failed: 0, filtered_out: 0, duration_ms: 0.0,
/// };
/// assert_eq!(pgstrata::testing::tap(&report), "TAP version 13\n1..0\n# 0 passed, 0 failed in 0.0 ms (seed 7)\n");
/// ```
pub fn tap(report: &TestReport) -> String {
    let mut out = String::from("TAP version 13\n");
    let _ = writeln!(out, "1..{}", report.results.len());
    for (i, r) in report.results.iter().enumerate() {
        let ok = if r.outcome == TestOutcome::Passed {
            "ok"
        } else {
            "not ok"
        };
        let _ = writeln!(
            out,
            "{ok} {} - {} # time={:.3}ms",
            i + 1,
            r.name,
            r.duration_ms
        );
        let mut yaml = Vec::new();
        if let Some(f) = &r.failure {
            yaml.push(format!("message: {}", yaml_str(&f.message)));
            yaml.push(format!("phase: {}", yaml_str(&f.phase)));
            if let Some(s) = &f.sqlstate {
                yaml.push(format!("sqlstate: {}", yaml_str(s)));
            }
            if let Some(l) = &f.location {
                yaml.push(format!("at: {}", yaml_str(l)));
            }
            if let Some(d) = &f.detail {
                yaml.push(format!("detail: {}", yaml_str(d)));
            }
            if let Some(h) = &f.hint {
                yaml.push(format!("hint: {}", yaml_str(h)));
            }
            if let Some(c) = &f.context {
                yaml.push(format!("context: {}", yaml_str(c)));
            }
        }
        if r.outcome == TestOutcome::Failed {
            yaml.push(format!(
                "file: {}",
                yaml_str(&format!("{}:{}", r.file, r.line))
            ));
            yaml.push(format!("package: {}", yaml_str(&r.package)));
            if !r.notices.is_empty() {
                yaml.push("notices:".to_string());
                for n in &r.notices {
                    yaml.push(format!(
                        "  - {}",
                        yaml_str(&format!("{}: {}", n.severity, n.message))
                    ));
                }
            }
        }
        if !yaml.is_empty() {
            out.push_str("  ---\n");
            for line in yaml {
                let _ = writeln!(out, "  {line}");
            }
            out.push_str("  ...\n");
        }
        // pgTAP's own lines, as a subtest-style comment block.
        for line in &r.tap {
            let _ = writeln!(out, "    # {line}");
        }
    }
    let _ = writeln!(out, "# {report}");
    out
}

/// A YAML double-quoted scalar.
fn yaml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The report as JUnit XML: one `<testsuite>` per package.
pub fn junit(report: &TestReport) -> String {
    let mut packages: Vec<&str> = Vec::new();
    for r in &report.results {
        if !packages.contains(&r.package.as_str()) {
            packages.push(&r.package);
        }
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"strata\" tests=\"{}\" failures=\"{}\" time=\"{:.3}\">",
        report.results.len(),
        report.failed,
        report.duration_ms / 1000.0
    );
    for p in packages {
        let cases: Vec<_> = report.results.iter().filter(|r| r.package == p).collect();
        let failures = cases
            .iter()
            .filter(|r| r.outcome == TestOutcome::Failed)
            .count();
        let time: f64 = cases.iter().map(|r| r.duration_ms).sum::<f64>() / 1000.0;
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" time=\"{time:.3}\">",
            xml(p),
            cases.len()
        );
        let _ = writeln!(
            out,
            "    <properties><property name=\"seed\" value=\"{}\"/></properties>",
            report.seed
        );
        for r in cases {
            let _ = write!(
                out,
                "    <testcase name=\"{}\" classname=\"{}\" file=\"{}\" line=\"{}\" time=\"{:.6}\"",
                xml(&r.name),
                xml(p),
                xml(&r.file),
                r.line,
                r.duration_ms / 1000.0
            );
            if r.outcome == TestOutcome::Passed && r.notices.is_empty() && r.tap.is_empty() {
                out.push_str("/>\n");
                continue;
            }
            out.push_str(">\n");
            if let Some(f) = &r.failure {
                let mut body = String::new();
                if let Some(l) = &f.location {
                    let _ = writeln!(body, "at {l}");
                }
                for (k, v) in [
                    ("detail", &f.detail),
                    ("hint", &f.hint),
                    ("context", &f.context),
                ] {
                    if let Some(v) = v {
                        let _ = writeln!(body, "{k}: {v}");
                    }
                }
                let _ = writeln!(
                    out,
                    "      <failure message=\"{}\" type=\"{}\">{}</failure>",
                    xml(&f.message),
                    xml(f.sqlstate.as_deref().unwrap_or(&f.phase)),
                    xml(&body)
                );
            }
            if !r.notices.is_empty() || !r.tap.is_empty() {
                let mut text = String::new();
                for n in &r.notices {
                    let _ = writeln!(text, "{}: {}", n.severity, n.message);
                }
                for l in &r.tap {
                    let _ = writeln!(text, "{l}");
                }
                let _ = writeln!(out, "      <system-out>{}</system-out>", xml(&text));
            }
            out.push_str("    </testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters, even escaped.
            c if c.is_control() && !matches!(c, '\n' | '\r' | '\t') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Notice;
    use crate::report::test::{TestFailure, TestResult};

    fn report() -> TestReport {
        TestReport {
            seed: 42,
            results: vec![
                TestResult {
                    package: "p".into(),
                    name: "app.a_test".into(),
                    file: "t_test.sql".into(),
                    line: 1,
                    outcome: TestOutcome::Passed,
                    duration_ms: 1.5,
                    notices: vec![],
                    tap: vec![],
                    failure: None,
                },
                TestResult {
                    package: "p".into(),
                    name: "app.b_test".into(),
                    file: "t_test.sql".into(),
                    line: 7,
                    outcome: TestOutcome::Failed,
                    duration_ms: 2.0,
                    notices: vec![Notice {
                        severity: "NOTICE".into(),
                        message: "x < \"y\"".into(),
                    }],
                    tap: vec![],
                    failure: Some(TestFailure {
                        phase: "test".into(),
                        message: "boom & bust".into(),
                        sqlstate: Some("P0001".into()),
                        detail: None,
                        hint: None,
                        context: Some("PL/pgSQL function app.b_test() line 3 at RAISE".into()),
                        location: Some("t_test.sql:9".into()),
                    }),
                },
            ],
            passed: 1,
            failed: 1,
            filtered_out: 0,
            duration_ms: 3.5,
        }
    }

    #[test]
    fn tap_output() {
        let t = tap(&report());
        assert!(t.starts_with(
            "TAP version 13\n1..2\nok 1 - app.a_test # time=1.500ms\nnot ok 2 - app.b_test"
        ));
        assert!(t.contains("  message: \"boom & bust\"\n"));
        assert!(t.contains("  at: \"t_test.sql:9\"\n"));
        assert!(t.contains("  - \"NOTICE: x < \\\"y\\\"\"\n"));
        assert!(t.ends_with("# 1 passed, 1 failed in 3.5 ms (seed 42)\n"));
    }

    #[test]
    fn junit_output() {
        let x = junit(&report());
        assert!(
            x.contains("<testsuites name=\"strata\" tests=\"2\" failures=\"1\" time=\"0.004\">")
        );
        assert!(x.contains("<testcase name=\"app.a_test\" classname=\"p\" file=\"t_test.sql\" line=\"1\" time=\"0.001500\"/>"));
        assert!(x.contains("<failure message=\"boom &amp; bust\" type=\"P0001\">at t_test.sql:9\ncontext: PL/pgSQL function app.b_test() line 3 at RAISE\n</failure>"));
        assert!(x.contains("<system-out>NOTICE: x &lt; &quot;y&quot;\n</system-out>"));
    }
}
