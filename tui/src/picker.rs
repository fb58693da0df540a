//! The first screen: every lab grouped by track, with the student's progress in each.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

use crate::app::{Action, Component, common_key};
use crate::source::LabSummary;
use crate::strings;
use crate::theme::Theme;
use crate::widgets::{bar, fit, help_bar};

pub struct Picker {
    pub labs: Vec<LabSummary>,
    pub selected: usize,
}

impl Picker {
    pub fn new(labs: Vec<LabSummary>) -> Picker {
        Picker { labs, selected: 0 }
    }

    /// New progress figures, keeping the selection on the same lab.
    pub fn set_labs(&mut self, labs: Vec<LabSummary>) {
        let id = self.selected_id();
        self.labs = labs;
        self.selected = id
            .and_then(|id| self.labs.iter().position(|l| l.id == id))
            .unwrap_or(0);
    }

    pub fn selected_id(&self) -> Option<String> {
        self.labs.get(self.selected).map(|l| l.id.clone())
    }

    pub fn select(&mut self, id: &str) {
        if let Some(i) = self.labs.iter().position(|l| l.id == id) {
            self.selected = i;
        }
    }

    pub fn move_by(&mut self, n: isize) {
        if self.labs.is_empty() {
            return;
        }
        self.selected = self
            .selected
            .saturating_add_signed(n)
            .min(self.labs.len() - 1);
    }

    /// The list's lines (track headings and lab rows) and the row of the selected lab.
    fn lines(&self, width: usize, theme: &Theme) -> (Vec<Line<'static>>, usize) {
        let mut lines = Vec::new();
        let mut selected_row = 0;
        let mut track = "";
        for (i, l) in self.labs.iter().enumerate() {
            if l.track != track {
                if !lines.is_empty() {
                    lines.push(Line::default());
                }
                track = &l.track;
                lines.push(Line::styled(l.track.clone(), theme.heading()));
            }
            let mark = if l.steps > 0 && l.done == l.steps {
                Span::styled("✓", theme.pass())
            } else if l.started {
                Span::raw("▶")
            } else {
                Span::raw(" ")
            };
            let right = format!(
                " {} {:>6}",
                bar(l.done, l.steps, 6),
                strings::minutes(l.minutes)
            );
            let right_w = right.chars().count();
            let title_w = width.saturating_sub(4 + right_w);
            let title = fit(&l.title, title_w);
            let pad = title_w.saturating_sub(unicode_width::UnicodeWidthStr::width(title.as_str()));
            let mut row = Line::from(vec![
                Span::raw(" "),
                mark,
                Span::raw(" "),
                Span::raw(title),
                Span::raw(" ".repeat(pad)),
                Span::raw(right),
            ]);
            if i == self.selected {
                selected_row = lines.len();
                row = row.style(theme.selected());
            }
            lines.push(row);
        }
        (lines, selected_row)
    }
}

impl Component for Picker {
    fn key(&self, key: KeyEvent) -> Option<Action> {
        match key.code {
            KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') => Some(Action::Open),
            KeyCode::Esc => Some(Action::Quit),
            _ => common_key(key),
        }
    }

    fn draw(&self, f: &mut Frame, area: Rect, theme: &Theme) {
        let [title, list, about, help] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(3),
            Constraint::Length(4),
            Constraint::Length(1),
        ])
        .areas(area);
        f.render_widget(Line::styled(strings::APP_TITLE, theme.title()), title);
        if self.labs.is_empty() {
            f.render_widget(
                Paragraph::new(strings::NO_LABS).wrap(Wrap { trim: true }),
                list,
            );
        } else {
            let (lines, sel) = self.lines(usize::from(list.width), theme);
            // Keep the selected row in view, with its track heading when it fits.
            let h = usize::from(list.height);
            let top = (sel + 2).saturating_sub(h).min(sel.saturating_sub(1));
            f.render_widget(Paragraph::new(lines).scroll((top as u16, 0)), list);
        }
        if let Some(l) = self.labs.get(self.selected) {
            let text = vec![
                Line::from(vec![
                    Span::styled(l.id.clone(), theme.key()),
                    Span::raw("  "),
                    Span::styled(
                        if l.started {
                            strings::progress(l.done, l.steps, l.earned, l.points)
                        } else {
                            strings::NOT_STARTED.to_string()
                        },
                        theme.dim(),
                    ),
                ]),
                Line::raw(l.summary.clone()),
            ];
            f.render_widget(
                Paragraph::new(text)
                    .wrap(Wrap { trim: true })
                    .block(Block::new().borders(Borders::TOP)),
                about,
            );
        }
        help_bar(f, help, strings::PICKER_HELP, theme);
    }
}
