//! The lab screen: steps (done / current / failed), the step's text with hints and quiz, the
//! check results with their evidence, and the live cluster panel for labs with a cluster.

use std::cell::Cell;

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use crate::app::{Action, Component, common_key, step_mark};
use crate::cluster;
use crate::markdown;
use crate::source::{ClusterSnapshot, LabDetail, Round, StepState};
use crate::strings;
use crate::theme::Theme;
use crate::widgets::{fit, help_bar};

/// Terminals at least this wide show the cluster beside the step instead of behind Tab.
const WIDE: u16 = 120;

pub struct LabView {
    pub detail: LabDetail,
    /// The step shown (the student may look back or ahead).
    pub viewing: usize,
    pub scroll: u16,
    /// The selected quiz question of the step shown.
    pub question: usize,
    /// The last check round of the current step.
    pub round: Option<Round>,
    pub checking: bool,
    pub show_cluster: bool,
    pub cluster: Option<ClusterSnapshot>,
    /// Lines past the text pane's bottom at the last draw, to stop scrolling at the end.
    max_scroll: Cell<u16>,
}

impl LabView {
    pub fn new(detail: LabDetail) -> LabView {
        let viewing = detail
            .current
            .unwrap_or(detail.steps.len().saturating_sub(1));
        LabView {
            detail,
            viewing,
            scroll: 0,
            question: 0,
            round: None,
            checking: true,
            show_cluster: false,
            cluster: None,
            max_scroll: Cell::new(u16::MAX),
        }
    }

    pub fn set_detail(&mut self, d: LabDetail) {
        self.detail = d;
        self.viewing = self.viewing.min(self.detail.steps.len().saturating_sub(1));
        self.mark_failed();
    }

    /// The current step shows as failed when its last round failed.
    pub fn mark_failed(&mut self) {
        let failed = self.round.as_ref().is_some_and(|r| !r.passed);
        if let Some(c) = self.detail.current
            && let Some(s) = self.detail.steps.get_mut(c)
        {
            let round_is_here = self.round.as_ref().is_some_and(|r| r.step == c);
            s.state = if failed && round_is_here {
                StepState::Failed
            } else {
                StepState::Current
            };
        }
    }

    pub fn view_step(&mut self, i: usize) {
        let i = i.min(self.detail.steps.len().saturating_sub(1));
        if i != self.viewing {
            self.viewing = i;
            self.scroll = 0;
            self.question = 0;
            self.max_scroll.set(u16::MAX);
        }
    }

    pub fn scroll_by(&mut self, n: i16) {
        self.scroll = self
            .scroll
            .saturating_add_signed(n)
            .min(self.max_scroll.get());
    }

    pub fn scroll_to_end(&mut self) {
        self.scroll = u16::MAX;
    }

    pub fn next_question(&mut self) {
        let n = self
            .detail
            .steps
            .get(self.viewing)
            .map_or(0, |s| s.questions.len());
        if n > 0 {
            self.question = (self.question + 1) % n;
        }
    }

    /// The step's text, hints and quiz as wrapped lines.
    fn content(&self, width: u16, theme: &Theme) -> Vec<Line<'static>> {
        let Some(step) = self.detail.steps.get(self.viewing) else {
            return Vec::new();
        };
        let mut lines = markdown::render(&step.text, width, theme);
        let w = usize::from(width);
        if !step.hints.is_empty() {
            lines.push(Line::default());
            for (i, h) in step.hints.iter().take(step.hints_shown).enumerate() {
                let label = format!("{}: ", strings::hint_label(i + 1, step.hints.len()));
                let md = markdown::render(h, width.saturating_sub(label.len() as u16), theme);
                for (j, l) in md.into_iter().enumerate() {
                    let mut spans = vec![if j == 0 {
                        Span::styled(label.clone(), theme.key())
                    } else {
                        Span::raw(" ".repeat(label.len()))
                    }];
                    spans.extend(l.spans);
                    lines.push(Line::from(spans));
                }
            }
            if step.hints_shown < step.hints.len() {
                lines.push(Line::styled(
                    fit(&strings::hints_left(step.hints_shown, step.hints.len()), w),
                    theme.dim(),
                ));
            }
        }
        for (qi, q) in step.questions.iter().enumerate() {
            lines.push(Line::default());
            let selected = qi == self.question && step.questions.len() > 1;
            let head = format!("{} {}", if selected { "▶?" } else { "?" }, q.text);
            lines.extend(
                markdown::render(&head, width, theme)
                    .into_iter()
                    .map(|l| l.patch_style(theme.title())),
            );
            for (i, c) in q.choices.iter().enumerate() {
                let mine = q.answered == Some(i);
                let text = format!(
                    "  {} {}) {c}{}",
                    if mine { "●" } else { "○" },
                    i + 1,
                    if mine {
                        format!("  ← {}", strings::YOUR_ANSWER)
                    } else {
                        String::new()
                    }
                );
                lines.push(Line::raw(fit(&text, w)));
            }
            let keys = if step.questions.len() > 1 {
                format!("  {}; {}", strings::QUIZ_KEYS, strings::QUIZ_NEXT)
            } else {
                format!("  {}", strings::QUIZ_KEYS)
            };
            lines.push(Line::styled(keys, theme.dim()));
        }
        lines
    }

    /// The check panel's lines for the step shown.
    fn checks(&self, width: u16, theme: &Theme) -> (String, Vec<Line<'static>>) {
        let w = usize::from(width);
        let Some(step) = self.detail.steps.get(self.viewing) else {
            return (strings::CHECKS.into(), Vec::new());
        };
        if self.detail.current.is_none() {
            let s = strings::complete(self.detail.earned, self.detail.points);
            return (strings::CHECKS.into(), vec![Line::styled(s, theme.pass())]);
        }
        if !step.graded {
            return (
                strings::CHECKS.into(),
                vec![Line::raw(strings::READING_STEP)],
            );
        }
        if step.state == StepState::Done {
            return (
                strings::CHECKS.into(),
                vec![Line::styled(strings::STEP_DONE, theme.pass())],
            );
        }
        if Some(self.viewing) != self.detail.current {
            return (
                strings::CHECKS.into(),
                vec![Line::raw(strings::NOT_CURRENT)],
            );
        }
        let Some(round) = self.round.as_ref().filter(|r| r.step == self.viewing) else {
            return (
                strings::CHECKS.into(),
                vec![Line::raw(strings::NOT_CHECKED)],
            );
        };
        let passed = round.checks.iter().filter(|c| c.passed).count();
        let mut title = format!(
            "{} {}",
            strings::CHECKS,
            strings::round_result(passed, round.checks.len(), round.millis)
        );
        if self.checking {
            title = format!("{title} {}", strings::CHECKING);
        }
        let mut lines = Vec::new();
        for c in &round.checks {
            let (mark, style) = if c.passed {
                ("✓", theme.pass())
            } else {
                ("✗", theme.fail())
            };
            let pts = format!("  [{}/{} pt]", c.earned, c.points);
            lines.push(Line::from(vec![
                Span::styled(format!("{mark} "), style),
                Span::raw(fit(&c.title, w.saturating_sub(2 + pts.len()))),
                Span::styled(pts, theme.dim()),
            ]));
            // Why it failed is what the student needs; a pass needs no explaining.
            if !c.passed {
                for e in &c.evidence {
                    lines.push(Line::raw(fit(&format!("    {e}"), w)));
                }
            }
        }
        (title, lines)
    }

    fn draw_steps(&self, f: &mut Frame, area: Rect, theme: &Theme) {
        let inner_w = usize::from(area.width.saturating_sub(2));
        let lines: Vec<Line> = self
            .detail
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let style = match s.state {
                    StepState::Done => theme.pass(),
                    StepState::Failed => theme.fail(),
                    _ => theme.plain(),
                };
                let label = fit(
                    &format!("{}. {}", i + 1, s.title),
                    inner_w.saturating_sub(2),
                );
                let mut l = Line::from(vec![
                    Span::styled(step_mark(s.state), style),
                    Span::raw(" "),
                    Span::raw(label),
                ]);
                if i == self.viewing {
                    l = l.style(theme.selected());
                }
                l
            })
            .collect();
        let h = usize::from(area.height.saturating_sub(2));
        let top = (self.viewing + 1).saturating_sub(h);
        f.render_widget(
            Paragraph::new(lines)
                .scroll((top as u16, 0))
                .block(Block::bordered().title(strings::STEPS)),
            area,
        );
    }

    fn draw_text(&self, f: &mut Frame, area: Rect, theme: &Theme) {
        let Some(step) = self.detail.steps.get(self.viewing) else {
            return;
        };
        let inner = Block::bordered().inner(area);
        let lines = self.content(inner.width, theme);
        let max = (lines.len() as u16).saturating_sub(inner.height);
        self.max_scroll.set(max);
        let scroll = self.scroll.min(max);
        let title = fit(
            &strings::step_heading(self.viewing, self.detail.steps.len(), &step.title),
            usize::from(area.width.saturating_sub(4)),
        );
        let mut block = Block::bordered().title(Span::styled(title, theme.title()));
        if max > 0 {
            block = block.title_bottom(Line::from(format!(" {}/{} ", scroll, max)).right_aligned());
        }
        f.render_widget(Paragraph::new(lines).scroll((scroll, 0)).block(block), area);
    }
}

impl Component for LabView {
    fn key(&self, key: KeyEvent) -> Option<Action> {
        match key.code {
            KeyCode::Left | KeyCode::Char('[') => Some(Action::PrevStep),
            KeyCode::Right | KeyCode::Char(']') => Some(Action::NextStep),
            KeyCode::Char('h') => Some(Action::Hint),
            KeyCode::Char('c') => Some(Action::CheckNow),
            KeyCode::Char('s') => Some(Action::Shell),
            KeyCode::Char('a') => Some(Action::NextQuestion),
            KeyCode::Tab => Some(Action::ToggleCluster),
            KeyCode::Esc | KeyCode::Char('b') | KeyCode::Backspace => Some(Action::Back),
            KeyCode::Char(c @ '1'..='9') => Some(Action::Answer(c as usize - '1' as usize)),
            _ => common_key(key),
        }
    }

    fn draw(&self, f: &mut Frame, area: Rect, theme: &Theme) {
        let (check_title, check_lines) = self.checks(area.width.saturating_sub(2), theme);
        let check_h = (check_lines.len() as u16 + 2).clamp(3, (area.height / 3).max(3));
        let [top, body, checks, help] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(3),
            Constraint::Length(check_h),
            Constraint::Length(1),
        ])
        .areas(area);

        let d = &self.detail;
        let done = d
            .steps
            .iter()
            .filter(|s| s.state == StepState::Done)
            .count();
        let right = strings::progress(done, d.steps.len(), d.earned, d.points);
        let left_w = usize::from(top.width).saturating_sub(right.len() + 1);
        let title = fit(&d.title, left_w);
        let pad = left_w.saturating_sub(unicode_width::UnicodeWidthStr::width(title.as_str()));
        f.render_widget(
            Line::from(vec![
                Span::styled(title, theme.title()),
                Span::raw(" ".repeat(pad + 1)),
                Span::raw(right),
            ]),
            top,
        );

        let steps_w = (body.width / 3).clamp(16, 30);
        let wide = d.has_cluster && body.width >= WIDE;
        let [steps, main, side] = Layout::horizontal([
            Constraint::Length(steps_w),
            Constraint::Min(20),
            Constraint::Percentage(if wide { 40 } else { 0 }),
        ])
        .areas(body);
        self.draw_steps(f, steps, theme);
        if self.show_cluster && d.has_cluster && !wide {
            cluster::draw(f, main, self.cluster.as_ref(), self.scroll, theme);
        } else {
            self.draw_text(f, main, theme);
        }
        if wide {
            cluster::draw(f, side, self.cluster.as_ref(), 0, theme);
        }
        f.render_widget(
            Paragraph::new(check_lines).block(Block::bordered().title(check_title)),
            checks,
        );
        help_bar(f, help, strings::LAB_HELP, theme);
    }
}

/// A message over the help bar (errors, "hint 2/3").
pub fn status_line(f: &mut Frame, area: Rect, msg: &str, theme: &Theme) {
    if area.height == 0 {
        return;
    }
    let r = Rect {
        y: area.y + area.height - 1,
        height: 1,
        ..area
    };
    help_bar(f, r, msg, theme);
}
