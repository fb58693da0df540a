//! Kindling's lab TUI (`kindling learn`): screens, their state machine, Markdown rendering and
//! the terminal loop. It knows labs only through [`LabSource`], which the `kindling` package
//! implements on its lab engine, so the TUI and the lab shell grade the same way.

pub mod app;
pub mod cluster;
pub mod help;
pub mod lab;
pub mod markdown;
pub mod picker;
pub mod run;
pub mod source;
pub mod strings;
pub mod theme;
pub mod widgets;

pub use app::{Action, App, Component, Effect};
pub use run::{Options, run};
pub use source::*;
pub use theme::Theme;

/// A key press without modifiers, for tests and scripted input.
pub fn crossterm_key(c: char) -> ratatui::crossterm::event::KeyEvent {
    ratatui::crossterm::event::KeyEvent::from(ratatui::crossterm::event::KeyCode::Char(c))
}
