//! A result for people (text) and for CI: JUnit XML (a testsuite per lab, a testcase per check,
//! a failure carrying the evidence, as GitLab and Jenkins read it) and Gradescope's
//! results.json (score, max_score, tests[] with name, score, max_score, output).

use std::fmt::Write;

use serde_json::{Value, json};

use super::GradeResult;

/// What `kindling grade` prints by default.
pub fn text(r: &GradeResult) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({}) for {}: {}/{} points",
        r.lab.title, r.lab.id, r.student, r.score, r.max_score
    );
    for s in &r.steps {
        let _ = writeln!(
            out,
            "\n{} {} ({})  {}/{}",
            if s.passed { "✓" } else { "✗" },
            s.title,
            s.id,
            s.score,
            s.max_score
        );
        for c in &s.checks {
            let _ = writeln!(
                out,
                "  {} {}{}  [{}/{} pt]",
                if c.passed { "✓" } else { "✗" },
                if c.hidden { "(hidden) " } else { "" },
                c.title,
                c.earned,
                c.points
            );
            for line in &c.evidence {
                let _ = writeln!(out, "      {line}");
            }
        }
    }
    let _ = writeln!(
        out,
        "\ngraded {} by kindling {} in {} ms; lab {} {}; quiz answers from {}{}",
        r.graded_at,
        r.kindling,
        r.millis,
        r.lab.version,
        r.lab.content_hash,
        r.answers_from,
        match &r.signature {
            Some(_) => "; signed",
            None => "; NOT signed (pass --key-file to sign)",
        }
    );
    out
}

/// Escape text for XML 1.0 content and attributes, dropping characters XML cannot hold at all
/// (control characters in evidence would make Jenkins refuse the whole report).
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

fn secs(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// JUnit XML: one `<testsuite>` for the lab, one `<testcase>` per check (classname
/// `lab.step`), `<failure>` with the evidence for failed checks.
pub fn junit(r: &GradeResult) -> String {
    let checks: Vec<_> = r
        .steps
        .iter()
        .flat_map(|s| s.checks.iter().map(move |c| (s, c)))
        .collect();
    let failures = checks.iter().filter(|(_, c)| !c.passed).count();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"kindling grade\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{}\">",
        checks.len(),
        secs(r.millis)
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{}\" timestamp=\"{}\">",
        xml_escape(&r.lab.id),
        checks.len(),
        secs(r.millis),
        xml_escape(r.graded_at.trim_end_matches('Z'))
    );
    x.push_str("    <properties>\n");
    for (k, v) in [
        ("student", r.student.clone()),
        ("score", r.score.to_string()),
        ("max_score", r.max_score.to_string()),
        ("kindling", r.kindling.clone()),
        ("lab_content_hash", r.lab.content_hash.clone()),
        ("answers_from", r.answers_from.clone()),
    ] {
        let _ = writeln!(
            x,
            "      <property name=\"{k}\" value=\"{}\"/>",
            xml_escape(&v)
        );
    }
    x.push_str("    </properties>\n");
    for (s, c) in checks {
        let _ = write!(
            x,
            "    <testcase classname=\"{}.{}\" name=\"{} ({}/{} pt){}\" time=\"{}\"",
            xml_escape(&r.lab.id),
            xml_escape(&s.id),
            xml_escape(&c.id),
            c.earned,
            c.points,
            if c.hidden { " hidden" } else { "" },
            secs(c.millis)
        );
        if c.passed {
            x.push_str("/>\n");
        } else {
            let _ = writeln!(
                x,
                ">\n      <failure message=\"{}\" type=\"check failed\">{}</failure>\n    </testcase>",
                xml_escape(&c.title),
                xml_escape(&c.evidence.join("\n"))
            );
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

/// Gradescope's results.json. Hidden checks are `visibility: hidden` (students never see them;
/// their points still count).
pub fn gradescope(r: &GradeResult) -> Value {
    let tests: Vec<Value> = r
        .steps
        .iter()
        .flat_map(|s| {
            s.checks.iter().map(move |c| {
                json!({
                    "name": format!("{} / {}: {}", s.title, c.id, c.title),
                    "number": format!("{}.{}", s.id, c.id),
                    "score": c.earned,
                    "max_score": c.points,
                    "status": if c.passed { "passed" } else { "failed" },
                    "output": c.evidence.join("\n"),
                    "visibility": if c.hidden { "hidden" } else { "visible" },
                })
            })
        })
        .collect();
    json!({
        "score": r.score,
        "max_score": r.max_score,
        "execution_time": (r.millis as f64 / 1000.0),
        "output": format!("{} graded by kindling {} at {}", r.lab.id, r.kindling, r.graded_at),
        "tests": tests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grade::tests::fixture_result;

    #[test]
    fn junit_has_a_testcase_per_check_and_failures_with_evidence() {
        let r = fixture_result("ana", "lab-a", &[true, false, true, false]);
        let x = junit(&r);
        assert!(x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites "));
        assert_eq!(x.matches("<testsuite ").count(), 1);
        assert!(x.contains("<testsuite name=\"lab-a\" tests=\"4\" failures=\"2\""));
        assert_eq!(x.matches("<testcase ").count(), 4);
        assert_eq!(x.matches("<failure ").count(), 2);
        assert!(x.contains("classname=\"lab-a.step-0\" name=\"check-1 (0/2 pt)\""));
        // Titles and evidence are escaped; the control character is gone.
        assert!(x.contains("message=\"check number 1 &lt;&amp;&gt;\""));
        assert!(x.contains("saw thing 1\na &quot;quoted&quot; line</failure>"));
        assert!(!x.contains('\u{1}'));
        assert!(x.contains("<property name=\"score\" value=\"4\"/>"));
        // Balanced: every opened element is closed.
        for tag in ["testsuites", "testsuite", "properties"] {
            assert_eq!(
                x.matches(&format!("<{tag}>")).count() + x.matches(&format!("<{tag} ")).count(),
                x.matches(&format!("</{tag}>")).count(),
                "{tag}"
            );
        }
    }

    #[test]
    fn gradescope_results_carry_score_and_one_test_per_check() {
        let r = fixture_result("ana", "lab-a", &[true, false, true]);
        let g = gradescope(&r);
        assert_eq!(g["score"], 4);
        assert_eq!(g["max_score"], 6);
        let tests = g["tests"].as_array().unwrap();
        assert_eq!(tests.len(), 3);
        assert_eq!(tests[1]["score"], 0);
        assert_eq!(tests[1]["max_score"], 2);
        assert_eq!(tests[1]["status"], "failed");
        assert!(tests[1]["output"].as_str().unwrap().contains("saw thing 1"));
        assert!(tests[1]["name"].as_str().unwrap().contains("check-1"));
        assert_eq!(tests[2]["visibility"], "hidden");
        assert_eq!(tests[0]["visibility"], "visible");
        let sum: u64 = tests.iter().map(|t| t["score"].as_u64().unwrap()).sum();
        assert_eq!(sum, 4);
    }

    #[test]
    fn text_says_whether_the_result_is_signed() {
        let mut r = fixture_result("ana", "lab-a", &[true, false]);
        let t = text(&r);
        assert!(t.contains("for ana: 2/4 points"), "{t}");
        assert!(t.contains("NOT signed"), "{t}");
        r.sign(&crate::grade::Key::from_bytes(b"0123456789abcdefg"));
        assert!(text(&r).contains("; signed"));
    }
}
