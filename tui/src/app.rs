//! The state machine: screens as [`Component`]s that turn keys into [`Action`]s, and [`App`]
//! applying actions through the [`LabSource`]. Drawing reads state and never changes it.

use std::sync::Arc;

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;

use crate::help;
use crate::lab::LabView;
use crate::picker::Picker;
use crate::source::{LabSource, Round, StepState};
use crate::strings;
use crate::theme::Theme;

/// A screen: keys in, actions out; drawing from its own state only.
pub trait Component {
    fn key(&self, key: KeyEvent) -> Option<Action>;
    fn draw(&self, f: &mut Frame, area: Rect, theme: &Theme);
}

/// Everything the student can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    Help,
    Up,
    Down,
    PageUp,
    PageDown,
    /// Mouse wheel or other relative scrolling.
    ScrollBy(i16),
    Open,
    Back,
    PrevStep,
    NextStep,
    Hint,
    CheckNow,
    /// Answer the selected quiz question with this choice (0-based).
    Answer(usize),
    NextQuestion,
    ToggleCluster,
    Shell,
}

/// What the run loop must do outside the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    None,
    Quit,
    /// Leave the screen, prepare the lab (it prints progress), come back to it.
    Start(String),
    /// Leave the screen, run the lab shell, come back.
    Shell(String),
    /// Run a check round now instead of waiting for the next tick.
    CheckNow,
}

pub struct App {
    source: Arc<dyn LabSource>,
    pub theme: Theme,
    pub picker: Picker,
    pub lab: Option<LabView>,
    pub help: bool,
    /// A one-line message in the help bar until the next key.
    pub status: Option<String>,
}

impl App {
    pub fn new(source: Arc<dyn LabSource>, theme: Theme) -> App {
        let picker = Picker::new(source.labs());
        App {
            source,
            theme,
            picker,
            lab: None,
            help: false,
            status: None,
        }
    }

    /// The lab whose checks should run in the background.
    pub fn active_lab(&self) -> Option<&str> {
        self.lab
            .as_ref()
            .filter(|l| l.detail.started && l.detail.current.is_some())
            .map(|l| l.detail.id.as_str())
    }

    pub fn key(&mut self, key: KeyEvent) -> Effect {
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            return Effect::Quit;
        }
        self.status = None;
        if self.help {
            self.help = false;
            return Effect::None;
        }
        let action = match &self.lab {
            Some(l) => l.key(key),
            None => self.picker.key(key),
        };
        action.map_or(Effect::None, |a| self.update(a))
    }

    pub fn update(&mut self, action: Action) -> Effect {
        match action {
            Action::Quit => return Effect::Quit,
            Action::Help => self.help = true,
            _ => {}
        }
        let Some(view) = &mut self.lab else {
            match action {
                Action::Up => self.picker.move_by(-1),
                Action::Down => self.picker.move_by(1),
                Action::PageUp => self.picker.move_by(-10),
                Action::PageDown => self.picker.move_by(10),
                Action::ScrollBy(n) => self.picker.move_by(isize::from(n.signum())),
                Action::Open => {
                    if let Some(id) = self.picker.selected_id() {
                        return self.open(&id);
                    }
                }
                _ => {}
            }
            return Effect::None;
        };
        match action {
            Action::Up => view.scroll_by(-1),
            Action::Down => view.scroll_by(1),
            Action::PageUp => view.scroll_by(-10),
            Action::PageDown => view.scroll_by(10),
            Action::ScrollBy(n) => view.scroll_by(n),
            Action::PrevStep => view.view_step(view.viewing.saturating_sub(1)),
            Action::NextStep => view.view_step(view.viewing + 1),
            Action::NextQuestion => view.next_question(),
            Action::ToggleCluster => {
                view.show_cluster = !view.show_cluster && view.detail.has_cluster
            }
            Action::Back => {
                self.lab = None;
                self.picker.set_labs(self.source.labs());
            }
            Action::Hint => {
                let id = view.detail.id.clone();
                let step = view.viewing;
                let of = view.detail.steps.get(step).map_or(0, |s| s.hints.len());
                if of == 0 {
                    self.status = Some(strings::NO_HINTS.into());
                } else {
                    let before = view.detail.steps[step].hints_shown;
                    match self.source.reveal_hint(&id, step) {
                        Ok(n) => {
                            view.detail.steps[step].hints_shown = n;
                            view.scroll_to_end();
                            self.status = Some(if before >= of {
                                strings::LAST_HINT.into()
                            } else {
                                strings::hint_label(n, of)
                            });
                        }
                        Err(e) => self.status = Some(strings::error(&e)),
                    }
                }
            }
            Action::Answer(choice) => {
                let Some(step) = view.detail.steps.get(view.viewing) else {
                    return Effect::None;
                };
                let Some(q) = step.questions.get(view.question) else {
                    return Effect::None;
                };
                if choice >= q.choices.len() {
                    return Effect::None;
                }
                let qid = q.id.clone();
                match self.source.answer(&view.detail.id, &qid, choice) {
                    Ok(()) => {
                        let step = view.viewing;
                        let qi = view.question;
                        view.detail.steps[step].questions[qi].answered = Some(choice);
                        self.status = Some(strings::answered(&qid, choice));
                        return Effect::CheckNow;
                    }
                    Err(e) => self.status = Some(strings::error(&e)),
                }
            }
            Action::CheckNow => {
                view.checking = true;
                return Effect::CheckNow;
            }
            Action::Shell => return Effect::Shell(view.detail.id.clone()),
            _ => {}
        }
        Effect::None
    }

    /// Open a lab; one never started is prepared first (outside the screen).
    pub fn open(&mut self, id: &str) -> Effect {
        match self.source.open(id) {
            Ok(d) if !d.started => Effect::Start(id.to_string()),
            Ok(d) => {
                self.lab = Some(LabView::new(d));
                Effect::CheckNow
            }
            Err(e) => {
                self.status = Some(strings::error(&e));
                Effect::None
            }
        }
    }

    /// After the screen comes back from the shell or a start: re-read the lab's progress.
    pub fn reload(&mut self) {
        self.picker.set_labs(self.source.labs());
        if let Some(view) = &mut self.lab {
            let was_current = view.detail.current == Some(view.viewing);
            match self.source.open(&view.detail.id) {
                Ok(d) => {
                    view.set_detail(d);
                    // Steps passed in the shell: follow the student to where they are now.
                    if was_current && let Some(c) = view.detail.current {
                        view.view_step(c);
                    }
                }
                Err(e) => self.status = Some(strings::error(&e)),
            }
        }
    }

    /// A check round finished (in the background or on request).
    pub fn on_round(&mut self, lab: &str, result: Result<Option<Round>, String>) {
        let Some(view) = self.lab.as_mut().filter(|v| v.detail.id == lab) else {
            return;
        };
        view.checking = false;
        match result {
            Ok(round) => {
                let advanced = round.as_ref().is_some_and(|r| r.passed);
                view.round = round;
                if advanced {
                    match self.source.open(lab) {
                        Ok(d) => {
                            let follow = view.viewing == view.detail.current.unwrap_or(usize::MAX);
                            view.set_detail(d);
                            if follow {
                                // The student was on the step that just passed: show the next.
                                let next = view.detail.current.unwrap_or(view.viewing);
                                view.view_step(next);
                            }
                        }
                        Err(e) => self.status = Some(strings::error(&e)),
                    }
                }
                view.mark_failed();
            }
            Err(e) => self.status = Some(strings::error(&e)),
        }
    }

    /// Refresh the cluster panel from the source's watches.
    pub fn refresh_cluster(&mut self) {
        if let Some(view) = &mut self.lab
            && view.detail.has_cluster
        {
            view.cluster = self.source.cluster(&view.detail.id);
        }
    }

    /// Whether the open lab's cluster panel has nodes to show.
    pub fn cluster_shown(&self) -> bool {
        self.lab
            .as_ref()
            .and_then(|l| l.cluster.as_ref())
            .is_some_and(|c| !c.nodes.is_empty())
    }

    pub fn draw(&self, f: &mut Frame) {
        let area = f.area();
        match &self.lab {
            Some(l) => l.draw(f, area, &self.theme),
            None => self.picker.draw(f, area, &self.theme),
        }
        // The help bar's last row carries a status message when there is one.
        if let Some(s) = &self.status {
            crate::lab::status_line(f, area, s, &self.theme);
        }
        if self.help {
            help::draw(f, area, &self.theme);
        }
    }
}

/// Keys every screen shares.
pub(crate) fn common_key(key: KeyEvent) -> Option<Action> {
    match key.code {
        KeyCode::Char('q') => Some(Action::Quit),
        KeyCode::Char('?') => Some(Action::Help),
        KeyCode::Up | KeyCode::Char('k') => Some(Action::Up),
        KeyCode::Down | KeyCode::Char('j') => Some(Action::Down),
        KeyCode::PageUp => Some(Action::PageUp),
        KeyCode::PageDown | KeyCode::Char(' ') => Some(Action::PageDown),
        _ => None,
    }
}

/// A step's mark in lists.
pub(crate) fn step_mark(state: StepState) -> &'static str {
    match state {
        StepState::Done => "✓",
        StepState::Current => "▶",
        StepState::Failed => "✗",
        StepState::Skipped => "–",
        StepState::Todo => "·",
    }
}
