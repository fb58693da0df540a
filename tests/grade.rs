//! `kindling grade`, `kindling class grade` and `kindling class report` through the real binary:
//! a Docker-only lab graded before and after its solution, signed, a copy tampered, the class
//! report's CSV totals and flags, report.html rendered by headless Chromium; and a class's live
//! clusters graded at once.

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

/// The PNG headless Chromium draws of `html`.
fn screenshot(browser: &Path, html: &Path, png: &Path) -> Vec<u8> {
    let shot = run(Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1200,900",
        ])
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display())));
    std::fs::read(png)
        .unwrap_or_else(|e| panic!("chromium wrote no screenshot ({e}): {}", shot.stderr))
}

/// `kindling class report` of `results` into `out`; its output and the grades.csv it wrote.
fn class_report(
    data: &Path,
    results: &Path,
    key: &Path,
    roster: Option<&Path>,
    out: &Path,
) -> (Run, String) {
    let mut args = vec!["class", "report", results.to_str().unwrap()];
    if let Some(r) = roster {
        args.extend(["--roster", r.to_str().unwrap()]);
    }
    args.extend([
        "--key-file",
        key.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let r = kindling(data, &args).ok("class report");
    let csv = std::fs::read_to_string(out.join("grades.csv")).unwrap();
    (r, csv)
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
    assert_eq!(before["kindling"].as_str(), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(before["lab"]["version"], "kindling.dev/v1alpha1");
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

    // A teacher's check pack adds a check students never see; it counts like the others.
    let pack = root.join("hidden.yaml");
    std::fs::write(
        &pack,
        format!(
            r#"apiVersion: kindling.dev/v1alpha1
kind: CheckPack
lab: {LAB}
steps:
  - step: bridge
    checks:
      - id: hidden-bridge-ip
        points: 2
        title: {{en: "lab-net-bridge has an IPv4 address", zh: "lab-net-bridge 有 IPv4 地址"}}
        exec: {{in: host, command: "docker exec lab-net-bridge ip -4 addr show eth0", output: 'inet [0-9]'}}
"#
        ),
    )
    .unwrap();
    let gs = kindling(
        &data,
        &[
            "grade",
            LAB,
            "--student",
            "bob",
            "--checks",
            pack.to_str().unwrap(),
            "--format",
            "gradescope",
        ],
    )
    .ok("grade with a check pack");
    let gs: serde_json::Value = serde_json::from_str(&gs.stdout).unwrap();
    assert_eq!(
        (gs["score"].as_u64(), gs["max_score"].as_u64()),
        (Some(15), Some(15)),
        "{gs:#}"
    );
    let hidden: Vec<&serde_json::Value> = gs["tests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["visibility"] == "hidden")
        .collect();
    assert_eq!(hidden.len(), 1, "{gs:#}");
    assert_eq!(hidden[0]["score"], 2, "{gs:#}");

    // dan copies cara's signed result as his own and raises the score in the file.
    let text = std::fs::read_to_string(&cara).unwrap();
    let forged = text
        .replacen("\"score\": 3,", "\"score\": 13,", 1)
        .replace("\"cara\"", "\"dan\"");
    assert_ne!(forged, text);
    assert!(forged.contains("\"dan\""), "{forged}");
    std::fs::write(results.join("dan.json"), forged).unwrap();

    let roster = root.join("roster.csv");
    std::fs::write(&roster, "id,name\nana,Ana\nbob,Bob\ncara,Cara\ndan,Dan\n").unwrap();
    let out = root.join("report");
    let (r, csv) = class_report(&data, &results, &key, Some(&roster), &out);
    assert!(
        r.stderr.contains("flagged: dan.json: tampered"),
        "{}",
        r.stderr
    );
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], format!("student,{LAB},total,flags"));
    assert_eq!(lines[1], "ana,0,0,");
    assert_eq!(lines[2], "bob,13,13,");
    // The complete and the partial result count as signed; the tampered copy counts nothing.
    assert_eq!(lines[3], "cara,3,3,", "{csv}");
    assert!(lines[4].starts_with("dan,,0,dan.json: tampered"), "{csv}");
    assert_eq!(lines.len(), 5, "{csv}");

    // The report renders in a real browser, chart included: the page drawn without its chart
    // looks different.
    let browser = browser.unwrap();
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let (from, to) = (html.find("<svg").unwrap(), html.find("</svg>").unwrap());
    let bare = out.join("report-without-chart.html");
    std::fs::write(&bare, format!("{}{}", &html[..from], &html[to + 6..])).unwrap();
    let with_chart = screenshot(&browser, &out.join("report.html"), &root.join("report.png"));
    let without = screenshot(&browser, &bare, &root.join("report-without-chart.png"));
    assert!(
        with_chart.len() > 20_000,
        "the screenshot is only {} bytes",
        with_chart.len()
    );
    assert_ne!(with_chart, without, "the chart changed nothing on the page");

    kindling(&data, &["lab", "reset", LAB]).ok("lab reset");
    if !in_ci() {
        let _ = std::fs::remove_dir_all(&root);
    }
}

/// A teacher grades the live clusters of a class at once, one kubeconfig per student: a student
/// whose cluster is gone gets 0 without holding up the others, the step a student solved counts,
/// and the signed results make the class report.
#[test]
fn class_grade_grades_each_students_live_cluster_in_parallel() {
    const CLUSTER_LAB: &str = "workloads-pods";
    const CLUSTER: &str = "kindling-lab";
    if !common::docker_available() {
        return;
    }
    let _lock = common::cluster_lock();
    let root = std::env::temp_dir().join(format!("kindling-class-grade-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let data = root.join("data");
    let key = root.join("class.key");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(&key, "another class key, 2026\n").unwrap();
    let key_s = key.to_str().unwrap();
    let had_cluster = kindling(&data, &["get", "clusters"])
        .stdout
        .lines()
        .any(|l| l.trim() == CLUSTER);

    kindling(&data, &["lab", "start", CLUSTER_LAB]).ok("lab start");
    let kubeconfig = data.join(format!("kindling/clusters/{CLUSTER}.kubeconfig"));
    let live = std::fs::read_to_string(&kubeconfig).unwrap();
    // eve's cluster is gone: nothing answers at its address any more.
    let gone: String = live
        .lines()
        .map(|l| match l.find("server:") {
            Some(i) => format!("{}server: https://127.0.0.1:9\n", &l[..i]),
            None => format!("{l}\n"),
        })
        .collect();
    assert_ne!(gone, live);
    let grade_class = |students: &[(&str, &str)], out: &Path| {
        let dir = root.join(format!("kubeconfigs-{}", students[0].0));
        std::fs::create_dir_all(&dir).unwrap();
        for (id, text) in students {
            std::fs::write(dir.join(format!("{id}.kubeconfig")), text).unwrap();
        }
        let started = Instant::now();
        let r = kindling(
            &data,
            &[
                "class",
                "grade",
                "--kubeconfigs",
                dir.to_str().unwrap(),
                CLUSTER_LAB,
                "--key-file",
                key_s,
                "--out",
                out.to_str().unwrap(),
            ],
        )
        .ok("class grade");
        eprintln!(
            "class grade of {} cluster(s) on {CLUSTER_LAB}: {:.0} ms",
            students.len(),
            started.elapsed().as_secs_f64() * 1000.0
        );
        r
    };

    // Before any solution: ana's cluster passes nothing, eve's cannot be reached.
    let results = root.join("results");
    let r = grade_class(&[("ana", &live), ("eve", &gone)], &results);
    assert!(r.stderr.contains("2 results, signed"), "{}", r.stderr);
    let ana = json(&results.join(format!("ana-{CLUSTER_LAB}.json")));
    let eve = json(&results.join(format!("eve-{CLUSTER_LAB}.json")));
    assert_eq!(ana["score"], 0, "{ana:#}");
    assert_eq!(eve["score"], 0, "{eve:#}");
    assert!(r.stdout.contains("stuck at namespace"), "{}", r.stdout);

    // bob solved the first step on his cluster: its 3 points, and the rest still open.
    kindling(&data, &["lab", "solve", CLUSTER_LAB, "--step", "namespace"]).ok("solve");
    let r = grade_class(&[("bob", &live)], &results);
    let bob = json(&results.join(format!("bob-{CLUSTER_LAB}.json")));
    assert_eq!(bob["score"], 3, "{bob:#}");
    assert_eq!(bob["steps"][0]["passed"], true, "{bob:#}");
    assert!(r.stdout.contains("stuck at inside"), "{}", r.stdout);

    let (_, csv) = class_report(&data, &results, &key, None, &root.join("report"));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], format!("student,{CLUSTER_LAB},total,flags"));
    assert_eq!(&lines[1..], ["ana,0,0,", "bob,3,3,", "eve,0,0,"], "{csv}");

    kindling(&data, &["lab", "reset", CLUSTER_LAB]).ok("lab reset");
    if !had_cluster {
        kindling(&data, &["delete", "cluster", "--name", CLUSTER]).ok("delete cluster");
    }
    if !in_ci() {
        let _ = std::fs::remove_dir_all(&root);
    }
}
