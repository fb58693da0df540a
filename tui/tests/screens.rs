//! Render tests for every screen, on ratatui's TestBackend with a fake lab source.

use std::sync::{Arc, Mutex};

use kindling_tui::crossterm_key as key;
use kindling_tui::*;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;

#[derive(Default)]
struct Fake {
    detail: Mutex<LabDetail>,
    answers: Mutex<Vec<(String, usize)>>,
    cluster: Option<ClusterSnapshot>,
    /// Replaces the three labs every other test sees.
    labs: Option<Vec<LabSummary>>,
}

fn summary(id: &str, track: &str, title: &str, done: usize, started: bool) -> LabSummary {
    LabSummary {
        id: id.into(),
        track: track.into(),
        title: title.into(),
        summary: format!("About {id}."),
        minutes: 20,
        steps: 4,
        done,
        points: 8,
        earned: 2 * done as u32,
        started,
    }
}

impl LabSource for Fake {
    fn labs(&self) -> Vec<LabSummary> {
        if let Some(labs) = &self.labs {
            return labs.clone();
        }
        vec![
            summary("docker-basics", "docker", "First containers", 4, true),
            summary("docker-ports", "docker", "Publishing a port", 1, true),
            summary("images-layers", "images", "Image layers", 0, false),
        ]
    }
    fn open(&self, _lab: &str) -> Result<LabDetail, String> {
        Ok(self.detail.lock().unwrap().clone())
    }
    fn start(&self, _lab: &str) -> Result<(), String> {
        Ok(())
    }
    fn reveal_hint(&self, _lab: &str, step: usize) -> Result<usize, String> {
        let mut d = self.detail.lock().unwrap();
        let s = &mut d.steps[step];
        s.hints_shown = (s.hints_shown + 1).min(s.hints.len());
        Ok(s.hints_shown)
    }
    fn check(&self, _lab: &str) -> Result<Option<Round>, String> {
        Ok(None)
    }
    fn answer(&self, _lab: &str, q: &str, choice: usize) -> Result<(), String> {
        self.answers.lock().unwrap().push((q.into(), choice));
        Ok(())
    }
    fn shell(&self, _lab: &str) -> Result<(), String> {
        Ok(())
    }
    fn cluster(&self, _lab: &str) -> Option<ClusterSnapshot> {
        self.cluster.clone()
    }
}

fn step(id: &str, title: &str, state: StepState) -> StepInfo {
    StepInfo {
        id: id.into(),
        title: title.into(),
        text: format!(
            "# {title}\n\nDo **this** with `docker run`.\n\n- one\n- two\n\n```sh\ndocker ps\n```\n"
        ),
        graded: true,
        points: 2,
        state,
        hints: vec!["Use `-d`.".into(), "`docker run -d --name web x`".into()],
        hints_shown: 0,
        questions: Vec::new(),
    }
}

fn detail(has_cluster: bool) -> LabDetail {
    let mut quiz = step("logs", "Read the logs", StepState::Todo);
    quiz.questions = vec![Question {
        id: "secret".into(),
        text: "Which word?".into(),
        choices: vec!["spark".into(), "ember".into()],
        answered: None,
    }];
    LabDetail {
        id: "docker-ports".into(),
        title: "Publishing a port".into(),
        steps: vec![
            step("run", "Run a web server", StepState::Done),
            step("publish", "Publish port 8081", StepState::Current),
            quiz,
            step("rm", "Clean up", StepState::Todo),
        ],
        current: Some(1),
        points: 8,
        earned: 2,
        has_cluster,
        started: true,
    }
}

fn failed_round() -> Round {
    Round {
        step: 1,
        passed: false,
        checks: vec![
            CheckView {
                title: "container web runs".into(),
                passed: true,
                points: 1,
                earned: 1,
                evidence: vec!["state running".into()],
            },
            CheckView {
                title: "port 8081 is published".into(),
                passed: false,
                points: 2,
                earned: 0,
                evidence: vec!["✗ ports: 80/tcp → 0.0.0.0:8080".into()],
            },
        ],
        millis: 42,
    }
}

fn app_with(fake: Fake, color: bool) -> (App, Arc<Fake>) {
    let fake = Arc::new(fake);
    let app = App::new(fake.clone(), Theme { color });
    (app, fake)
}

fn fake(has_cluster: bool) -> Fake {
    Fake {
        detail: Mutex::new(detail(has_cluster)),
        ..Default::default()
    }
}

fn draw(app: &App, w: u16, h: u16) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| app.draw(f)).unwrap();
    t.backend().buffer().clone()
}

fn text(b: &Buffer) -> String {
    let w = b.area.width as usize;
    b.content
        .chunks(w)
        .map(|row| {
            let mut s = String::new();
            let mut skip = 0;
            for c in row {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                s.push_str(c.symbol());
                skip = unicode_width::UnicodeWidthStr::width(c.symbol()).saturating_sub(1);
            }
            s.trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn opened(has_cluster: bool, color: bool) -> (App, Arc<Fake>) {
    let (mut app, f) = app_with(fake(has_cluster), color);
    app.picker.select("docker-ports");
    assert_eq!(app.update(Action::Open), Effect::CheckNow);
    (app, f)
}

#[test]
fn the_picker_groups_labs_by_track_with_progress() {
    let (app, _) = app_with(fake(false), true);
    let b = draw(&app, 60, 12);
    let mut expected = Buffer::with_lines([
        "Kindling labs",
        "docker",
        " ✓ First containers                     [██████] 4/4 20 min",
        " ▶ Publishing a port                    [█░░░░░] 1/4 20 min",
        "",
        "images",
        "   Image layers                         [░░░░░░] 0/4 20 min",
        "────────────────────────────────────────────────────────────",
        "docker-basics  4/4 steps  8/8 pt",
        "About docker-basics.",
        "",
        "↑↓ choose  Enter open  ? keys  q quit",
    ]);
    // Compare symbols only; styles are asserted separately.
    expected.set_style(expected.area, ratatui::style::Style::reset());
    let mut got = b.clone();
    got.set_style(got.area, ratatui::style::Style::reset());
    assert_eq!(got, expected, "\n{}", text(&b));
    // The selected lab is shown reversed, whatever the terminal's colors.
    assert!(
        b[(3, 2)]
            .modifier
            .contains(ratatui::style::Modifier::REVERSED)
    );
    assert!(
        !b[(3, 3)]
            .modifier
            .contains(ratatui::style::Modifier::REVERSED)
    );
}

#[test]
fn moving_down_selects_the_next_lab_and_enter_on_a_new_lab_asks_to_start_it() {
    let (mut app, _) = app_with(fake(false), true);
    app.update(Action::Down);
    app.update(Action::Down);
    assert_eq!(app.picker.selected_id().as_deref(), Some("images-layers"));
    let t = text(&draw(&app, 60, 12));
    assert!(t.contains("images-layers  not started"), "{t}");
    // Fake opens every lab as started; a lab not started must go through `start` first.
    let f = fake(false);
    f.detail.lock().unwrap().started = false;
    let (mut app, _) = app_with(f, true);
    assert_eq!(
        app.update(Action::Open),
        Effect::Start("docker-basics".into())
    );
    assert!(app.lab.is_none());
}

#[test]
fn the_lab_view_shows_steps_markdown_and_why_a_check_failed_at_80x24() {
    let (mut app, _) = opened(false, true);
    app.on_round("docker-ports", Ok(Some(failed_round())));
    let b = draw(&app, 80, 24);
    let t = text(&b);
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].starts_with("Publishing a port"), "{t}");
    assert!(lines[0].ends_with("1/4 steps  2/8 pt"), "{t}");
    assert!(t.contains("│✓ 1. Run a web server"), "{t}");
    assert!(t.contains("│✗ 2. Publish port 8081"), "{t}");
    assert!(t.contains("│· 3. Read the logs"), "{t}");
    assert!(t.contains("Step 2/4: Publish port 8081"), "{t}");
    assert!(t.contains("Do this with docker run."), "{t}");
    assert!(t.contains("• one"), "{t}");
    assert!(t.contains("  │ docker ps"), "{t}");
    assert!(t.contains("Checks 1/2 passed (42 ms)"), "{t}");
    assert!(t.contains("✓ container web runs"), "{t}");
    assert!(t.contains("✗ port 8081 is published  [0/2 pt]"), "{t}");
    assert!(t.contains("✗ ports: 80/tcp → 0.0.0.0:8080"), "{t}");
    // Evidence of a passing check is not shown: only failures need explaining.
    assert!(!t.contains("state running"), "{t}");
    assert!(lines[23].starts_with("←→ step"), "{t}");
    // Failed is red when colors are on.
    let y = lines
        .iter()
        .position(|l| l.contains("✗ port 8081"))
        .unwrap();
    let x = lines[y].chars().position(|c| c == '✗').unwrap();
    assert_eq!(b[(x as u16, y as u16)].fg, Color::Red);
}

#[test]
fn no_color_draws_with_the_terminals_own_colors_only() {
    let (mut app, _) = opened(true, false);
    app.on_round("docker-ports", Ok(Some(failed_round())));
    app.update(Action::Hint);
    for (w, h) in [(80, 24), (140, 40)] {
        let b = draw(&app, w, h);
        assert!(
            b.content
                .iter()
                .all(|c| c.fg == Color::Reset && c.bg == Color::Reset),
            "a color was used at {w}x{h}"
        );
    }
}

#[test]
fn hints_are_revealed_one_at_a_time() {
    let (mut app, f) = opened(false, true);
    let t = text(&draw(&app, 80, 30));
    assert!(t.contains("0 of 2 hints shown"), "{t}");
    assert!(!t.contains("Hint 1/2"), "{t}");
    app.update(Action::Hint);
    let t = text(&draw(&app, 80, 30));
    assert!(t.contains("Hint 1/2: Use -d."), "{t}");
    assert!(!t.contains("Hint 2/2:"), "{t}");
    app.update(Action::Hint);
    let t = text(&draw(&app, 80, 30));
    assert!(t.contains("Hint 2/2: docker run -d --name web x"), "{t}");
    assert_eq!(f.detail.lock().unwrap().steps[1].hints_shown, 2);
    app.update(Action::Hint);
    assert!(app.status.as_deref().unwrap().contains("last hint"));
}

#[test]
fn a_quiz_is_answered_in_place_and_checked_at_once() {
    let (mut app, f) = opened(false, true);
    app.update(Action::NextStep);
    let t = text(&draw(&app, 80, 30));
    assert!(t.contains("? Which word?"), "{t}");
    assert!(t.contains("○ 2) ember"), "{t}");
    let k = key('2');
    let effect = app.key(k);
    assert_eq!(effect, Effect::CheckNow);
    assert_eq!(*f.answers.lock().unwrap(), [("secret".to_string(), 1)]);
    let t = text(&draw(&app, 80, 30));
    assert!(t.contains("● 2) ember  ← your answer"), "{t}");
}

#[test]
fn long_text_scrolls_and_stops_at_its_end() {
    let f = fake(false);
    f.detail.lock().unwrap().steps[1].text = (1..=60)
        .map(|i| format!("line {i}\n\n"))
        .collect::<String>();
    let (mut app, _) = app_with(f, true);
    app.picker.select("docker-ports");
    app.update(Action::Open);
    let t = text(&draw(&app, 80, 24));
    assert!(
        t.contains("line 1 ") || t.contains("line 1\n") || t.contains("│line 1"),
        "{t}"
    );
    for _ in 0..500 {
        app.update(Action::Down);
        draw(&app, 80, 24);
    }
    let t = text(&draw(&app, 80, 24));
    assert!(t.contains("0 of 2 hints shown"), "{t}");
    assert!(!t.contains("│line 1 "), "{t}");
    // Scrolling back up takes as many steps as the text is long, not 500.
    let scroll = app.lab.as_ref().unwrap().scroll;
    assert!(scroll < 200, "scrolled past the end: {scroll}");
    app.update(Action::ScrollBy(-(scroll as i16)));
    assert!(text(&draw(&app, 80, 24)).contains("│line 1"));
}

#[test]
fn the_help_overlay_lists_every_key_and_any_key_closes_it() {
    let (mut app, _) = opened(false, true);
    app.update(Action::Help);
    let t = text(&draw(&app, 80, 24));
    assert!(t.contains("Keys (any key closes)"), "{t}");
    for (k, what) in strings::KEYS {
        assert!(t.contains(k) && t.contains(what), "{k} missing:\n{t}");
    }
    assert_eq!(app.key(key('x')), Effect::None);
    assert!(!app.help);
    assert_eq!(app.key(key('q')), Effect::Quit);
}

fn snapshot(pods: usize) -> ClusterSnapshot {
    ClusterSnapshot {
        nodes: vec![
            NodeRow {
                name: "lab-control-plane".into(),
                roles: "control-plane".into(),
                ready: true,
                ip: "172.18.0.2".into(),
            },
            NodeRow {
                name: "lab-worker".into(),
                roles: "<none>".into(),
                ready: false,
                ip: "172.18.0.3".into(),
            },
        ],
        pods: (0..pods)
            .map(|i| PodRow {
                namespace: "default".into(),
                name: format!("web-{i}"),
                phase: "Running".into(),
                ip: format!("10.244.1.{i}"),
                node: "lab-worker".into(),
            })
            .collect(),
        services: vec![ServiceRow {
            namespace: "default".into(),
            name: "web".into(),
            kind: "NodePort".into(),
            cluster_ip: "10.96.0.20".into(),
            ports: "80:30081/TCP".into(),
        }],
        events: vec![EventRow {
            kind: "Normal".into(),
            object: "pod/web-0".into(),
            reason: "Scheduled".into(),
            message: "assigned to lab-worker".into(),
        }],
        note: None,
    }
}

#[test]
fn the_cluster_panel_shows_nodes_pods_services_and_events() {
    let f = Fake {
        cluster: Some(snapshot(3)),
        ..fake(true)
    };
    let (mut app, _) = app_with(f, true);
    app.picker.select("docker-ports");
    app.update(Action::Open);
    app.refresh_cluster();
    // Narrow: behind Tab.
    assert!(!text(&draw(&app, 80, 24)).contains("Nodes (2)"));
    app.update(Action::ToggleCluster);
    let t = text(&draw(&app, 80, 30));
    assert!(t.contains("Nodes (2)"), "{t}");
    assert!(t.contains("✓ lab-control-plane"), "{t}");
    assert!(t.contains("control-plane 172.18.0.2"), "{t}");
    assert!(t.contains("web-2"), "{t}");
    assert!(t.contains("Running   10.244.1.2"), "{t}");
    assert!(t.contains("NodePort     10.96.0.20"), "{t}");
    assert!(t.contains("80:30081/TCP"), "{t}");
    assert!(t.contains("pod/web-0"), "{t}");
    assert!(t.contains("Scheduled"), "{t}");
    // Wide: beside the step text.
    app.update(Action::ToggleCluster);
    let t = text(&draw(&app, 150, 40));
    assert!(t.contains("Nodes (2)") && t.contains("Step 2/4"), "{t}");
}

#[test]
fn the_cluster_panel_says_why_it_is_empty_while_connecting_or_unreachable() {
    for note in [
        "Connecting to the lab cluster…",
        "error trying to connect: tcp connect error: Connection refused",
    ] {
        let f = Fake {
            cluster: Some(ClusterSnapshot {
                note: Some(note.into()),
                ..Default::default()
            }),
            ..fake(true)
        };
        let (mut app, _) = app_with(f, true);
        app.picker.select("docker-ports");
        app.update(Action::Open);
        app.refresh_cluster();
        let t = text(&draw(&app, 150, 40));
        let start: String = note.chars().take(25).collect();
        assert!(t.contains(&start), "{t}");
        assert!(t.contains("Nodes (0)") && t.contains("Pods (0)"), "{t}");
        // The step text and checks are still there beside it.
        assert!(t.contains("Step 2/4"), "{t}");
    }
}

#[test]
fn a_complete_lab_says_so_with_its_points_and_stops_checking() {
    let (mut app, f) = opened(false, true);
    {
        let mut d = f.detail.lock().unwrap();
        for s in &mut d.steps {
            s.state = StepState::Done;
        }
        d.current = None;
        d.earned = 8;
    }
    // The round that passed the last step.
    let mut round = failed_round();
    round.step = 3;
    round.passed = true;
    app.on_round("docker-ports", Ok(Some(round)));
    let t = text(&draw(&app, 80, 24));
    assert!(t.contains("✓ Lab complete: 8 of 8 points"), "{t}");
    assert!(t.contains("│✓ 4. Clean up"), "{t}");
    assert_eq!(
        app.active_lab(),
        None,
        "a complete lab is not checked any more"
    );
}

#[test]
fn with_no_labs_the_picker_says_how_to_find_out_why() {
    let f = Fake {
        labs: Some(Vec::new()),
        ..fake(false)
    };
    let (mut app, _) = app_with(f, false);
    let t = text(&draw(&app, 80, 24));
    assert!(t.contains("No labs found"), "{t}");
    assert!(t.contains("kindling lab lint --static"), "{t}");
    // Keys do nothing harmful on an empty list.
    for a in [Action::Down, Action::Up, Action::Open, Action::PageDown] {
        assert_eq!(app.update(a), Effect::None);
    }
    assert!(app.lab.is_none());
}

#[test]
fn a_finished_round_moves_on_to_the_next_step() {
    let (mut app, f) = opened(false, true);
    {
        let mut d = f.detail.lock().unwrap();
        d.steps[1].state = StepState::Done;
        d.steps[2].state = StepState::Current;
        d.current = Some(2);
    }
    let mut round = failed_round();
    round.passed = true;
    app.on_round("docker-ports", Ok(Some(round)));
    let t = text(&draw(&app, 80, 24));
    assert!(t.contains("Step 3/4: Read the logs"), "{t}");
    assert!(t.contains("│✓ 2. Publish port 8081"), "{t}");
    // A round for another lab (left behind) changes nothing.
    app.on_round("other", Err("boom".into()));
    assert!(app.status.is_none());
}

#[test]
fn every_screen_survives_tiny_and_odd_terminal_sizes() {
    let (mut app, _) = opened(true, true);
    app.on_round("docker-ports", Ok(Some(failed_round())));
    for (w, h) in [(1, 1), (10, 3), (20, 5), (80, 24), (33, 7), (200, 60)] {
        draw(&app, w, h);
        app.update(Action::Help);
        draw(&app, w, h);
        app.update(Action::Back);
        draw(&app, w, h);
        app.update(Action::Open);
        app.update(Action::ToggleCluster);
        draw(&app, w, h);
    }
}

/// 200 pods fit the cluster panel (`cargo bench -p kindling-tui --bench frame` times it).
#[test]
fn a_cluster_of_200_pods_renders() {
    let f = Fake {
        cluster: Some(snapshot(200)),
        ..fake(true)
    };
    let (mut app, _) = app_with(f, true);
    app.picker.select("docker-ports");
    app.update(Action::Open);
    app.on_round("docker-ports", Ok(Some(failed_round())));
    app.refresh_cluster();
    let t = text(&draw(&app, 160, 48));
    assert!(t.contains("Pods (200)"), "{t}");
    assert!(t.contains("web-0"), "{t}");
}
