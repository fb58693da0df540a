//! One frame of `kindling learn` (refresh the cluster panel, lay out, render into a buffer) with
//! 200 pods, 20 events and a failed check round on screen: 160x48 with the cluster beside the
//! step, and 80x24 with the cluster panel behind Tab. Budget 16 ms a frame. Run with
//! `cargo bench -p kindling-tui --bench frame`; prints figures, asserts none.

use std::time::{Duration, Instant};

use kindling_tui::*;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const FRAMES: usize = 300;
const PODS: usize = 200;

/// A lab with four steps, a cluster of three nodes and [`PODS`] pods.
struct Busy;

fn cluster() -> ClusterSnapshot {
    ClusterSnapshot {
        nodes: ["control-plane", "worker", "worker2"]
            .iter()
            .enumerate()
            .map(|(i, n)| NodeRow {
                name: format!("kindling-lab-{n}"),
                roles: if i == 0 { "control-plane" } else { "<none>" }.into(),
                ready: true,
                ip: format!("172.18.0.{}", i + 2),
            })
            .collect(),
        pods: (0..PODS)
            .map(|i| PodRow {
                namespace: "default".into(),
                name: format!("web-5d8f7c9b4-{i:05}"),
                phase: "Running".into(),
                ip: format!("10.244.{}.{}", i % 3, i / 3 + 2),
                node: format!("kindling-lab-worker{}", i % 2 + 1),
            })
            .collect(),
        services: vec![ServiceRow {
            namespace: "default".into(),
            name: "web".into(),
            kind: "NodePort".into(),
            cluster_ip: "10.96.0.20".into(),
            ports: "80:30081/TCP".into(),
        }],
        events: (0..20)
            .map(|i| EventRow {
                kind: "Normal".into(),
                object: format!("pod/web-5d8f7c9b4-{i:05}"),
                reason: "Started".into(),
                message: "Started container whoami".into(),
            })
            .collect(),
        note: None,
    }
}

impl LabSource for Busy {
    fn labs(&self) -> Vec<LabSummary> {
        vec![LabSummary {
            id: "services-expose".into(),
            track: "services".into(),
            title: "Exposing a Deployment".into(),
            steps: 4,
            points: 8,
            started: true,
            ..Default::default()
        }]
    }
    fn open(&self, lab: &str) -> Result<LabDetail, String> {
        let step = |i: usize, state| StepInfo {
            id: format!("s{i}"),
            title: format!("Step number {i}"),
            text: "## Scale it\n\nRun `kubectl scale deployment web --replicas=200` and watch \
                   **every** pod come up.\n\n```sh\nkubectl get pods -o wide\n```\n"
                .repeat(4),
            graded: true,
            points: 2,
            state,
            hints: vec!["Use `kubectl scale`.".into()],
            hints_shown: 1,
            questions: Vec::new(),
        };
        Ok(LabDetail {
            id: lab.into(),
            title: "Exposing a Deployment".into(),
            steps: vec![
                step(0, StepState::Done),
                step(1, StepState::Failed),
                step(2, StepState::Todo),
                step(3, StepState::Todo),
            ],
            current: Some(1),
            points: 8,
            earned: 2,
            has_cluster: true,
            started: true,
        })
    }
    fn start(&self, _: &str) -> Result<(), String> {
        Ok(())
    }
    fn reveal_hint(&self, _: &str, _: usize) -> Result<usize, String> {
        Ok(1)
    }
    fn check(&self, _: &str) -> Result<Option<Round>, String> {
        Ok(None)
    }
    fn answer(&self, _: &str, _: &str, _: usize) -> Result<(), String> {
        Ok(())
    }
    fn shell(&self, _: &str) -> Result<(), String> {
        Ok(())
    }
    fn cluster(&self, _: &str) -> Option<ClusterSnapshot> {
        Some(cluster())
    }
}

fn round() -> Round {
    Round {
        step: 1,
        passed: false,
        checks: (0..4)
            .map(|i| CheckView {
                title: format!("deployment web has 200 ready pods ({i})"),
                passed: i % 2 == 0,
                points: 1,
                earned: (i % 2 == 0) as u32,
                evidence: vec!["✗ status.readyReplicas: 117 (want 200)".into()],
            })
            .collect(),
        millis: 120,
    }
}

fn measure(what: &str, w: u16, h: u16, tab: bool) {
    let mut app = App::new(std::sync::Arc::new(Busy), Theme { color: true });
    app.update(Action::Open);
    app.on_round("services-expose", Ok(Some(round())));
    if tab {
        app.update(Action::ToggleCluster);
    }
    let mut term = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    let mut times: Vec<Duration> = (0..FRAMES)
        .map(|_| {
            let start = Instant::now();
            app.refresh_cluster();
            term.draw(|f| app.draw(f)).expect("draw");
            start.elapsed()
        })
        .collect();
    times.sort();
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    let worst = times[times.len() - 1];
    println!(
        "{what:40} p50 {:>9.3?}  p99 {:>9.3?}  worst {:>9.3?}  {}",
        at(0.5),
        at(0.99),
        worst,
        if at(0.99) <= Duration::from_millis(16) {
            "within 16 ms"
        } else {
            "OVER 16 ms"
        }
    );
}

fn main() {
    println!("one frame with {PODS} pods in the cluster panel, {FRAMES} frames each:");
    measure("160x48, cluster beside the step", 160, 48, false);
    measure("80x24, cluster panel (Tab)", 80, 24, true);
    measure("80x24, step text", 80, 24, false);
}
