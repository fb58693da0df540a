//! Labs through the real binary: static lint of every bundled lab, full lint on real Docker and
//! a real cluster, and a student's whole session (`lab start/check/hint/answer/status/reset`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use common::{Run, docker, docker_available, run};

/// The Docker fixture's containers and port have fixed names: its tests take turns.
static FIXTURE_LOCK: Mutex<()> = Mutex::new(());

fn fixture_turn() -> MutexGuard<'static, ()> {
    FIXTURE_LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/labs")
}

/// A fresh XDG data folder, so no test sees a real student's progress.
fn data_home(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kindling-labs-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `kindling lab ...` in English, with progress under `data`.
fn lab(data: &Path, args: &[&str]) -> Run {
    run(Command::new(env!("CARGO_BIN_EXE_kindling"))
        .arg("lab")
        .args(args)
        .env("XDG_DATA_HOME", data)
        .env("LANG", "C.UTF-8")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES"))
}

fn fixture_lab(data: &Path, args: &[&str]) -> Run {
    let dir = fixtures();
    let mut all = vec!["--labs-dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    lab(data, &all)
}

/// The fixture labs' containers still present (all are named `fx-*`).
fn fixture_containers() -> String {
    docker(&[
        "ps",
        "-a",
        "--filter",
        "name=^fx-",
        "--format",
        "{{.Names}}",
    ])
    .ok("docker ps")
    .stdout
    .trim()
    .to_string()
}

#[test]
fn static_lint_accepts_every_bundled_lab_and_the_fixtures() {
    let data = data_home("static");
    let r = lab(&data, &["lint", "--static"]).ok("lab lint --static");
    assert!(!r.stdout.contains('✗'), "{}", r.stdout);
    let r = fixture_lab(&data, &["lint", "--static"]).ok("lab lint --static fixtures");
    assert!(r.stdout.contains("✓ fixture-docker"), "{}", r.stdout);
    assert!(r.stdout.contains("✓ fixture-cluster"), "{}", r.stdout);
}

#[test]
fn static_lint_reports_every_problem_of_a_bad_lab_with_its_position() {
    let data = data_home("static-bad");
    let dir = data.join("labs/docker/bad");
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/invalid-lab-many-problems.yaml"),
    )
    .unwrap();
    std::fs::write(dir.join("lab.yaml"), text).unwrap();
    let labs = data.join("labs");
    let r = lab(
        &data,
        &["--labs-dir", labs.to_str().unwrap(), "lint", "--static"],
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let file = dir.join("lab.yaml").display().to_string();
    for line in [
        format!("{file}:3:5: id: \"Bad_Id\" is not a valid id"),
        format!("{file}:7:10: minutes: 45 is outside 10-30"),
        format!("{file}:17:48: steps[0].checks[0].docker.container.state: \"up\" is not a state"),
    ] {
        assert!(
            r.stderr.contains(&line),
            "missing {line:?} in:\n{}",
            r.stderr
        );
    }
    assert!(r.stderr.contains("fix the lines above"), "{}", r.stderr);
}

#[test]
fn an_unknown_lab_is_refused_with_the_close_names() {
    let data = data_home("unknown");
    let r = fixture_lab(&data, &["start", "fixture-dockr"]);
    assert_eq!(r.code, 1);
    // A broken bundled lab adds a warning above; the error is the last line.
    assert_eq!(
        r.stderr.trim().lines().last().unwrap_or_default(),
        "error: no lab \"fixture-dockr\" (did you mean fixture-docker?); `kindling lab list` shows them all"
    );
    let r = lab(&data, &["check"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no lab named"), "{}", r.stderr);
}

#[test]
fn full_lint_proves_the_docker_fixture_lab_fair() {
    if !docker_available() {
        return;
    }
    let _turn = fixture_turn();
    let data = data_home("lint-docker");
    let r = fixture_lab(&data, &["lint", "fixture-docker"]);
    println!("{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.code, 0, "lint failed:\n{}\n{}", r.stdout, r.stderr);
    for proved in [
        "step run-web: all 2 check(s) fail before the solution",
        "step run-web: lookalike 0 (right image, wrong host port) fails check web-running",
        "step run-web: lookalike 1 (right name and port, wrong image) fails check web-running",
        "step network: lookalike 2 (the client on the default bridge, which has no DNS) fails check name-resolves",
        "step volume: lookalike 3 (a bind mount instead of a volume) fails check store-mounts",
        "step why-dns: the solution passes all 1 check(s)",
    ] {
        assert!(r.stdout.contains(proved), "missing {proved:?}");
    }
    // Lint leaves nothing of the lab behind.
    assert_eq!(fixture_containers(), "");
}

/// A lab whose lookalike is not wrong at all must fail lint, naming the lookalike.
#[test]
fn full_lint_fails_a_lab_whose_lookalike_passes_its_check() {
    if !docker_available() {
        return;
    }
    let _turn = fixture_turn();
    let data = data_home("lint-unfair");
    let src = fixtures().join("docker/fixture-docker");
    let dst = data.join("labs/docker/fixture-docker");
    copy_dir(&src, &dst);
    let yaml = std::fs::read_to_string(dst.join("lab.yaml")).unwrap();
    // The "wrong host port" lookalike now uses the right port: it is the solution.
    let yaml = yaml.replace(
        "commands: docker run -d --name fx-web -p 18482:80 kindling/whoami",
        "commands: docker run -d --name fx-web -p 18481:80 kindling/whoami",
    );
    std::fs::write(dst.join("lab.yaml"), yaml).unwrap();
    let labs = data.join("labs");
    let r = lab(
        &data,
        &[
            "--labs-dir",
            labs.to_str().unwrap(),
            "lint",
            "fixture-docker",
        ],
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("✗ step run-web: lookalike 0 (right image, wrong host port) passes check web-running, which must fail it"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains("lint failed for fixture-docker"),
        "{}",
        r.stderr
    );
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

#[test]
fn full_lint_proves_the_cluster_fixture_lab_fair_on_a_real_cluster() {
    if !docker_available() {
        return;
    }
    let _turn = common::cluster_lock();
    let data = data_home("lint-cluster");
    let existed = !common::node_containers("kindling-fixture").is_empty();
    let r = fixture_lab(&data, &["lint", "fixture-cluster"]);
    println!("{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.code, 0, "lint failed:\n{}\n{}", r.stdout, r.stderr);
    for proved in [
        "step deploy: lookalike 0 (right image, one replica) fails check deploy-spec",
        "step expose: lookalike 1 (right port, wrong target port) fails check svc-port",
        "step client: lookalike 2 (right name, wrong image) fails check client-ready",
        "step client: the solution passes all 2 check(s)",
    ] {
        assert!(r.stdout.contains(proved), "missing {proved:?}");
    }
    // A cluster lint made is gone again; one that was there stays.
    assert_eq!(
        !common::node_containers("kindling-fixture").is_empty(),
        existed
    );
}

#[test]
fn full_lint_passes_for_every_bundled_lab() {
    if !docker_available() {
        return;
    }
    let _turn = common::cluster_lock();
    let data = data_home("lint-bundled");
    let r = lab(&data, &["lint"]);
    println!("{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.code, 0, "lint failed:\n{}\n{}", r.stdout, r.stderr);
}

#[test]
fn a_student_works_through_the_fixture_lab_with_the_lab_commands() {
    if !docker_available() {
        return;
    }
    let _turn = fixture_turn();
    let data = data_home("student");
    // Start: images, setup, step 1's text.
    let r = fixture_lab(&data, &["start", "fixture-docker"]).ok("lab start");
    assert!(
        r.stdout.contains("Step 1/4: Publish a web server"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("The fixture lab's text for step `run-web`"),
        "{}",
        r.stdout
    );
    let work = data.join("kindling/work/fixture-docker");
    assert_eq!(
        std::fs::read_to_string(work.join("hello.txt")).unwrap(),
        "hello\n"
    );

    // Nothing done yet: the check fails and says what it saw.
    let r = fixture_lab(&data, &["check"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("✗ fx-web runs kindling/whoami"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("no container named fx-web"),
        "{}",
        r.stdout
    );

    // Hints come one at a time.
    let r = fixture_lab(&data, &["hint"]).ok("hint");
    assert!(
        r.stdout.contains("Hint 1/2") && !r.stdout.contains("Hint 2/2"),
        "{}",
        r.stdout
    );
    let r = fixture_lab(&data, &["hint"]).ok("hint");
    assert!(r.stdout.contains("Hint 2/2"), "{}", r.stdout);

    // A lookalike: the wrong host port fails, with the port it saw.
    docker(&[
        "run",
        "-d",
        "--name",
        "fx-web",
        "-p",
        "18482:80",
        "kindling/whoami",
    ])
    .ok("docker run");
    let r = fixture_lab(&data, &["check"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("✗ port 80/tcp: 0.0.0.0:18482"),
        "{}",
        r.stdout
    );
    docker(&["rm", "-f", "fx-web"]).ok("docker rm");

    // The right command passes the step and shows the next one.
    docker(&[
        "run",
        "-d",
        "--name",
        "fx-web",
        "-p",
        "18481:80",
        "kindling/whoami",
    ])
    .ok("docker run");
    let r = fixture_lab(&data, &["check"]).ok("check run-web");
    assert!(
        r.stdout.contains("✓ fx-web runs kindling/whoami"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("[2/2 pt]"), "{}", r.stdout);
    assert!(r.stdout.contains("Step 2/4"), "{}", r.stdout);

    let r = fixture_lab(&data, &["status"]).ok("status");
    assert!(
        r.stdout.contains("[█████░░░░░░░░░░░░░░░] 1/4"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("✓ 1. Publish a web server"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("▶ 2. Containers that find each other by name"),
        "{}",
        r.stdout
    );

    // `--step` checks a step other than the current one without moving progress, and names
    // the lab's steps when there is no such step.
    let r = fixture_lab(&data, &["check", "--step", "volume", "-o", "json"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        (&report["step"], &report["passed"]),
        (&"volume".into(), &false.into())
    );
    let r = fixture_lab(&data, &["check", "--step", "run-web"]).ok("re-check run-web");
    assert!(
        r.stdout.contains("✓ fx-web runs kindling/whoami"),
        "{}",
        r.stdout
    );
    let r = fixture_lab(&data, &["check", "--step", "nope"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("lab fixture-docker has no step \"nope\"; its steps are run-web, network"),
        "{}",
        r.stderr
    );
    let r = fixture_lab(&data, &["status"]).ok("status");
    assert!(
        r.stdout
            .contains("▶ 2. Containers that find each other by name"),
        "{}",
        r.stdout
    );

    // A teacher's `solve` runs the solution; the student's `check` still grades it.
    fixture_lab(&data, &["solve"]).ok("solve network");
    let r = fixture_lab(&data, &["check", "-o", "json"]).ok("check network");
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["step"], "network");
    assert_eq!(report["passed"], true);
    assert_eq!(report["checks"].as_array().unwrap().len(), 3);
    fixture_lab(&data, &["solve", "--step", "volume"]).ok("solve volume");
    fixture_lab(&data, &["check"]).ok("check volume");

    // The quiz: a wrong answer fails, the right one finishes the lab.
    fixture_lab(&data, &["answer", "fixture-docker", "dns", "1"]).ok("answer");
    let r = fixture_lab(&data, &["check"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("choice 1 is not right"), "{}", r.stdout);
    fixture_lab(&data, &["answer", "dns", "b"]).ok("answer");
    let r = fixture_lab(&data, &["check"]).ok("check quiz");
    assert!(
        r.stdout.contains("✓ Lab complete: 10 of 10 points."),
        "{}",
        r.stdout
    );

    let r = fixture_lab(&data, &["list", "-o", "json"]).ok("list");
    let rows: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "fixture-docker")
        .unwrap();
    assert_eq!(row["done"], 4);
    assert_eq!(row["earned"], 10);

    // Chinese text for the same lab.
    let r = fixture_lab(&data, &["--lang", "zh", "status"]).ok("status zh");
    assert!(r.stdout.contains("发布一个 Web 服务器"), "{}", r.stdout);

    // Reset removes what the lab made and the progress.
    fixture_lab(&data, &["reset"]).ok("reset");
    assert_eq!(fixture_containers(), "");
    let r = fixture_lab(&data, &["status", "fixture-docker"]).ok("status");
    assert!(r.stdout.contains("0/4"), "{}", r.stdout);
}

#[test]
fn the_lab_shell_finishes_the_fixture_lab_with_only_student_commands() {
    if !docker_available() {
        return;
    }
    let python = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !common::require("python3 (drives the shell through a pty)", python) {
        return;
    }
    let _turn = fixture_turn();
    let data = data_home("shell");
    let script = fixtures().join("drive-shell.py");
    let r = run(Command::new("python3")
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_kindling"))
        .arg(fixtures())
        .env("XDG_DATA_HOME", &data)
        .env("TERM", "xterm")
        .env("LANG", "C.UTF-8"));
    println!("{}", r.stdout);
    assert_eq!(
        r.code, 0,
        "the shell session failed:\n{}\n{}",
        r.stdout, r.stderr
    );
    assert!(r.stdout.contains("lab finished through the shell"));
    // History is kept for the next session.
    let history = std::fs::read_to_string(data.join("kindling/shell_history")).unwrap();
    assert!(
        history.contains("docker network create fx-net"),
        "{history}"
    );
    fixture_lab(&data, &["reset", "fixture-docker"]).ok("reset");
}
