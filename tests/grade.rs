//! `kindling grade` and `kindling class report` through the real binary, on real Docker: a
//! Docker-only lab graded before and after its solution, signed, one copy tampered, the class
//! report's CSV totals and flags, and report.html rendered by headless Chromium.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::{Run, in_ci, require, run};

const LAB: &str = "docker-network-modes";

fn kindling(data: &Path, args: &[&str]) -> Run {
    run(Command::new(env!("CARGO_BIN_EXE_kindling"))
        .env("XDG_DATA_HOME", data)
        .env("LANG", "C.UTF-8")
        .args(args))
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser"].iter().find_map(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|_| PathBuf::from(c))
    })
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_lab_is_graded_on_live_docker_signed_and_reported_for_the_class() {
    if !common::docker_available() {
        return;
    }
    let browser = chromium();
    if !require("chromium (apt-get install chromium)", browser.is_some()) {
        return;
    }
    let _lock = common::cluster_lock();
    let root = std::env::temp_dir().join(format!("kindling-grade-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let data = root.join("data");
    let results = root.join("results");
    std::fs::create_dir_all(&results).unwrap();
    let key = root.join("class.key");
    std::fs::write(&key, "a class key nobody guesses, 2026\n").unwrap();
    let key_s = key.to_str().unwrap();

    kindling(&data, &["lab", "start", LAB]).ok("lab start");

    // Before any solution: the lab's own setup leaves nothing a check accepts.
    let ana = results.join("ana.json");
    kindling(
        &data,
        &[
            "grade",
            LAB,
            "--student",
            "ana",
            "--key-file",
            key_s,
            "--format",
            "json",
            "--out",
            ana.to_str().unwrap(),
        ],
    )
    .ok("grade before the solution");
    let before = json(&ana);
    let max = before["maxScore"].as_u64().unwrap();
    assert_eq!(before["score"], 0, "{before:#}");
    assert_eq!(max, 13);
    assert_eq!(before["signature"]["algorithm"], "HMAC-SHA256");
    assert!(
        before["lab"]["contentHash"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let failing = &before["steps"][0]["checks"][0];
    assert_eq!(failing["passed"], false);
    assert!(
        !failing["evidence"].as_array().unwrap().is_empty(),
        "{failing}"
    );

    // JUnit and Gradescope from the same state.
    let junit = kindling(
        &data,
        &["grade", LAB, "--student", "ana", "--format", "junit"],
    )
    .ok("junit");
    assert!(junit.stdout.contains(&format!(
        "<testsuite name=\"{LAB}\" tests=\"9\" failures=\"9\""
    )));
    let gs = kindling(
        &data,
        &["grade", LAB, "--student", "ana", "--format", "gradescope"],
    )
    .ok("gradescope");
    let gs: serde_json::Value = serde_json::from_str(&gs.stdout).unwrap();
    assert_eq!(
        (gs["score"].as_u64(), gs["max_score"].as_u64()),
        (Some(0), Some(13))
    );
    assert_eq!(gs["tests"].as_array().unwrap().len(), 9);

    // The first step solved, the other not yet: partial credit, the unsigned copy for cara.
    kindling(&data, &["lab", "solve", LAB, "--step", "bridge"]).ok("solve bridge");
    let cara = results.join("cara.json");
    kindling(
        &data,
        &[
            "grade",
            LAB,
            "--student",
            "cara",
            "--key-file",
            key_s,
            "--format",
            "json",
            "--out",
            cara.to_str().unwrap(),
        ],
    )
    .ok("grade partial");
    let partial = json(&cara);
    assert_eq!(partial["score"], 3, "{partial:#}");
    assert_eq!(partial["steps"][0]["passed"], true);
    assert_eq!(partial["steps"][1]["passed"], false);

    // Every solution and the quiz answer: full points.
    for step in ["host", "none", "container"] {
        kindling(&data, &["lab", "solve", LAB, "--step", step]).ok("solve");
    }
    kindling(&data, &["lab", "answer", LAB, "shared-namespace", "1"]).ok("answer");
    let bob = results.join("bob.json");
    let started = Instant::now();
    kindling(
        &data,
        &[
            "grade",
            LAB,
            "--student",
            "bob",
            "--key-file",
            key_s,
            "--format",
            "json",
            "--out",
            bob.to_str().unwrap(),
        ],
    )
    .ok("grade after the solution");
    let took = started.elapsed();
    let full = json(&bob);
    assert_eq!(full["score"].as_u64(), Some(max), "{full:#}");
    assert_eq!(full["answersFrom"], "progress");
    eprintln!(
        "grading {LAB} on running state: {:.0} ms (the whole command; checks took {} ms; budget 2000 ms)",
        took.as_secs_f64() * 1000.0,
        full["millis"]
    );

    // cara raises her own score in the file.
    let text = std::fs::read_to_string(&cara).unwrap();
    let forged = text.replacen("\"score\": 3,", "\"score\": 13,", 1);
    assert_ne!(forged, text);
    std::fs::write(&cara, forged).unwrap();

    let roster = root.join("roster.csv");
    std::fs::write(&roster, "id,name\nana,Ana\nbob,Bob\ncara,Cara\n").unwrap();
    let out = root.join("report");
    let r = kindling(
        &data,
        &[
            "class",
            "report",
            results.to_str().unwrap(),
            "--roster",
            roster.to_str().unwrap(),
            "--key-file",
            key_s,
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .ok("class report");
    assert!(
        r.stderr.contains("flagged: cara.json: tampered"),
        "{}",
        r.stderr
    );
    let csv = std::fs::read_to_string(out.join("grades.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], format!("student,{LAB},total,flags"));
    assert_eq!(lines[1], "ana,0,0,");
    assert_eq!(lines[2], "bob,13,13,");
    assert!(lines[3].starts_with("cara,,0,cara.json: tampered"), "{csv}");

    // The report renders in a real browser, chart included.
    let png = root.join("report.png");
    let shot = run(Command::new(browser.unwrap())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1200,900",
        ])
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", out.join("report.html").display())));
    assert!(
        png.is_file(),
        "chromium wrote no screenshot: {}",
        shot.stderr
    );
    let size = std::fs::metadata(&png).unwrap().len();
    assert!(size > 20_000, "the screenshot is only {size} bytes");

    kindling(&data, &["lab", "reset", LAB]).ok("lab reset");
    if !in_ci() {
        let _ = std::fs::remove_dir_all(&root);
    }
}
