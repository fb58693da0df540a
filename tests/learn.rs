//! End-to-end: a student works through the first Docker lab in `kindling learn`, driven in tmux
//! (send-keys, capture-pane): picker → lab → each step done by the student's own commands in
//! another terminal, checked by the TUI on its own → the quiz answered in place → complete.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const SESSION: &str = "kindling-learn-e2e";

fn tmux(args: &[&str]) -> Run {
    run(Command::new("tmux").args(args))
}

fn screen() -> String {
    tmux(&["capture-pane", "-p", "-t", SESSION]).stdout
}

fn wait_screen(what: &str, timeout: Duration, want: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let s = screen();
        if want(&s) {
            return s;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out waiting for {what}; the screen was:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn student(commands: &str) {
    run(Command::new("sh").args(["-ec", commands])).ok(commands);
}

struct Session;
impl Drop for Session {
    fn drop(&mut self) {
        let _ = tmux(&["kill-session", "-t", SESSION]);
        student(
            "for c in lab-basics-web lab-basics-box lab-basics-talker lab-basics-old; do docker rm -f $c >/dev/null 2>&1 || true; done",
        );
    }
}

#[test]
fn a_student_finishes_the_first_docker_lab_in_the_tui() {
    if !docker_available() || !require("tmux", tmux(&["-V"]).code == 0) {
        return;
    }
    let data = std::env::temp_dir().join(format!("kindling-learn-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).unwrap();
    let _ = tmux(&["kill-session", "-t", SESSION]);
    let _guard = Session;
    let bin = env!("CARGO_BIN_EXE_kindling");
    let command = format!(
        "env XDG_DATA_HOME={} LANG=C.UTF-8 LC_ALL=C.UTF-8 {bin} learn --lang en",
        data.display()
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        SESSION,
        "-x",
        "120",
        "-y",
        "40",
        &command,
    ])
    .ok("tmux new-session");

    // The picker lists the labs by track; the first Docker lab is selected.
    wait_screen("the lab picker", Duration::from_secs(20), |s| {
        s.contains("Your first containers")
    });
    tmux(&["send-keys", "-t", SESSION, "Enter"]).ok("open the lab");
    // Starting builds what the lab needs (images) and runs its setup, then shows step 1.
    wait_screen("step 1 of docker-basics", Duration::from_secs(600), |s| {
        s.contains("0/6 steps")
    });

    // The student types the commands in another terminal; the TUI sees each outcome by itself.
    let steps: [(&str, Option<&str>); 6] = [
        ("docker run -d --name lab-basics-web kindling/whoami", None),
        ("docker logs lab-basics-talker | head -n 3", Some("3")),
        (
            "docker run -d --name lab-basics-box kindling/toolbox sleep infinity\n\
             docker exec lab-basics-box sh -c 'echo hello from inside > /tmp/notes.txt'",
            None,
        ),
        ("docker stop lab-basics-box", None),
        ("docker start lab-basics-box", None),
        (
            "docker rm lab-basics-old\ndocker rm -f lab-basics-talker",
            None,
        ),
    ];
    for (i, (commands, quiz_key)) in steps.iter().enumerate() {
        student(commands);
        if let Some(key) = quiz_key {
            // The quiz is answered in place with its choice's number.
            tmux(&["send-keys", "-t", SESSION, key]).ok("answer the quiz");
        }
        let done = format!("{}/6 steps", i + 1);
        wait_screen(&done, Duration::from_secs(30), |s| s.contains(&done));
    }
    let last = wait_screen("the lab complete", Duration::from_secs(30), |s| {
        s.contains("Lab complete")
    });
    assert!(last.contains("6/6 steps"), "{last}");

    // q quits and the terminal is given back (the session ends with the program).
    tmux(&["send-keys", "-t", SESSION, "q"]).ok("quit");
    wait_for("kindling learn to exit", Duration::from_secs(10), || {
        (tmux(&["has-session", "-t", SESSION]).code != 0).then_some(())
    });
    // Progress was saved where the lab commands read it.
    let status =
        run(Command::new(bin)
            .env("XDG_DATA_HOME", &data)
            .args(["lab", "status", "docker-basics"]))
        .ok("lab status");
    assert!(status.stdout.contains("6/6"), "{}", status.stdout);
    let _ = std::fs::remove_dir_all(Path::new(&data));
}
