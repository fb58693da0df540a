//! The terminal side: raw mode and the alternate screen, a panic hook that restores them, the
//! event loop, the background checker thread, and leaving the screen for the lab shell.

use std::io::{self, Stdout};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{
    self, DisableMouseCapture, EnableMouseCapture, Event, KeyEventKind, MouseEventKind,
};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};

use crate::app::{Action, App, Effect};
use crate::source::{LabSource, Round};
use crate::strings;
use crate::theme::Theme;

/// How often checks run in the background when nothing happens.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);
/// How often the screen is redrawn without input (cluster panel, check results).
const TICK: Duration = Duration::from_millis(250);
/// The same while the cluster panel waits for its first nodes, so they show as they come.
const TICK_CONNECTING: Duration = Duration::from_millis(25);
/// How often the checker looks at the source's change counter.
const CHANGES_POLL: Duration = Duration::from_millis(100);
/// The least time between two rounds started by events, so a busy cluster (pods churning,
/// heartbeats) cannot keep the checks running back to back.
const EVENT_GAP: Duration = Duration::from_millis(500);

pub struct Options {
    pub theme: Theme,
    /// Open this lab right away.
    pub lab: Option<String>,
    /// Called once the first frame is on the screen.
    pub on_first_frame: Option<Box<dyn FnOnce() + Send>>,
    /// Called once a frame shows the open lab's cluster nodes (they come from the watches).
    pub on_cluster_shown: Option<Box<dyn FnOnce() + Send>>,
}

type Term = Terminal<CrosstermBackend<Stdout>>;

fn enter() -> io::Result<Term> {
    enable_raw_mode()?;
    execute!(io::stdout(), EnterAlternateScreen, EnableMouseCapture)?;
    let mut t = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    t.clear()?;
    Ok(t)
}

/// Put the terminal back as the shell had it; safe to call twice.
pub fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(
        io::stdout(),
        DisableMouseCapture,
        LeaveAlternateScreen,
        ratatui::crossterm::cursor::Show
    );
}

/// Restore the terminal before a panic message prints, so it is readable and the shell works.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}

enum Command {
    Watch(Option<String>),
    Now,
}

type RoundMsg = (String, Result<Option<Round>, String>);

/// Runs check rounds off the UI thread: every [`CHECK_EVERY`] for the watched lab, at once on
/// request, and soon after the source reports a cluster or Docker event.
fn spawn_checker(source: Arc<dyn LabSource>) -> (Sender<Command>, Receiver<RoundMsg>) {
    let (cmd_tx, cmd_rx) = mpsc::channel::<Command>();
    let (res_tx, res_rx) = mpsc::channel::<RoundMsg>();
    thread::spawn(move || {
        let mut lab: Option<String> = None;
        let mut next = Instant::now() + CHECK_EVERY;
        let mut seen = 0;
        let mut last = Instant::now();
        loop {
            let wait = next.saturating_duration_since(Instant::now());
            let mut run = match cmd_rx.recv_timeout(wait.min(CHANGES_POLL)) {
                Ok(Command::Watch(l)) => {
                    let changed = l != lab;
                    lab = l;
                    changed
                }
                Ok(Command::Now) => true,
                Err(RecvTimeoutError::Timeout) => Instant::now() >= next,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let Some(id) = &lab else {
                next = Instant::now() + CHECK_EVERY;
                continue;
            };
            let changes = source.changes(id);
            if changes != seen && last.elapsed() >= EVENT_GAP {
                run = true;
            }
            if run {
                let r = source.check(id);
                // The round's own work (containers that read files, execs) makes events too;
                // they must not start another round.
                seen = source.changes(id);
                if res_tx.send((id.clone(), r)).is_err() {
                    return;
                }
                last = Instant::now();
                next = last + CHECK_EVERY;
            }
        }
    });
    (cmd_tx, res_rx)
}

/// Leave the screen, run `f` in the plain terminal, come back.
fn suspended(term: &mut Term, f: impl FnOnce()) -> io::Result<()> {
    restore();
    f();
    *term = enter()?;
    Ok(())
}

/// Run the TUI until the student quits.
pub fn run(source: Arc<dyn LabSource>, mut opts: Options) -> io::Result<()> {
    install_panic_hook();
    let mut term = enter()?;
    let result = event_loop(&mut term, source, &mut opts);
    restore();
    result
}

fn event_loop(term: &mut Term, source: Arc<dyn LabSource>, opts: &mut Options) -> io::Result<()> {
    let mut app = App::new(source.clone(), opts.theme);
    let (checker, rounds) = spawn_checker(source.clone());
    let mut watched: Option<String> = None;
    let mut pending = match opts.lab.take() {
        Some(id) => {
            app.picker.select(&id);
            app.open(&id)
        }
        None => Effect::None,
    };
    term.draw(|f| app.draw(f))?;
    if let Some(cb) = opts.on_first_frame.take() {
        cb();
    }
    loop {
        match std::mem::replace(&mut pending, Effect::None) {
            Effect::None => {}
            Effect::Quit => return Ok(()),
            Effect::CheckNow => {
                let _ = checker.send(Command::Watch(app.active_lab().map(str::to_string)));
                watched = app.active_lab().map(str::to_string);
                let _ = checker.send(Command::Now);
            }
            Effect::Start(id) => {
                let _ = checker.send(Command::Watch(None));
                watched = None;
                let mut failed = None;
                suspended(term, || {
                    eprintln!("{}", strings::STARTING);
                    if let Err(e) = source.start(&id) {
                        eprintln!("{}\n{}", strings::error(&e), strings::PRESS_ENTER);
                        let mut line = String::new();
                        let _ = io::stdin().read_line(&mut line);
                        failed = Some(e);
                    }
                })?;
                app.reload();
                pending = match failed {
                    Some(e) => {
                        app.status = Some(strings::error(&e));
                        Effect::None
                    }
                    None => app.open(&id),
                };
                // A lab that still reads as not started would loop; stop here.
                if matches!(pending, Effect::Start(_)) {
                    pending = Effect::None;
                }
                continue;
            }
            Effect::Shell(id) => {
                let _ = checker.send(Command::Watch(None));
                watched = None;
                let mut err = None;
                suspended(term, || err = source.shell(&id).err())?;
                app.reload();
                if let Some(e) = err {
                    app.status = Some(strings::error(&e));
                }
                pending = Effect::CheckNow;
                continue;
            }
        }
        let active = app.active_lab().map(str::to_string);
        if active != watched {
            let _ = checker.send(Command::Watch(active.clone()));
            watched = active;
        }
        while let Ok((lab, r)) = rounds.try_recv() {
            app.on_round(&lab, r);
        }
        app.refresh_cluster();
        term.draw(|f| app.draw(f))?;
        let shown = app.cluster_shown();
        if shown && let Some(cb) = opts.on_cluster_shown.take() {
            cb();
        }
        let connecting = !shown && app.lab.as_ref().is_some_and(|l| l.detail.has_cluster);
        if event::poll(if connecting { TICK_CONNECTING } else { TICK })? {
            match event::read()? {
                Event::Key(k) if k.kind == KeyEventKind::Press => pending = app.key(k),
                Event::Mouse(m) => match m.kind {
                    MouseEventKind::ScrollUp => pending = app.update(Action::ScrollBy(-3)),
                    MouseEventKind::ScrollDown => pending = app.update(Action::ScrollBy(3)),
                    _ => {}
                },
                // The next draw fits the new size.
                Event::Resize(..) => {}
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Counts check rounds; its change counter is moved by the test.
    #[derive(Default)]
    struct Events {
        changes: AtomicU64,
        rounds: AtomicU64,
    }

    impl LabSource for Events {
        fn labs(&self) -> Vec<LabSummary> {
            Vec::new()
        }
        fn open(&self, _: &str) -> Result<LabDetail, String> {
            Err("no labs".into())
        }
        fn start(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn reveal_hint(&self, _: &str, _: usize) -> Result<usize, String> {
            Ok(0)
        }
        fn check(&self, _: &str) -> Result<Option<Round>, String> {
            self.rounds.fetch_add(1, Ordering::SeqCst);
            Ok(None)
        }
        fn answer(&self, _: &str, _: &str, _: usize) -> Result<(), String> {
            Ok(())
        }
        fn shell(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn cluster(&self, _: &str) -> Option<ClusterSnapshot> {
            None
        }
        fn changes(&self, _: &str) -> u64 {
            self.changes.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn an_event_runs_the_checks_at_once_not_at_the_next_tick() {
        let source = Arc::new(Events::default());
        let (cmd, rounds) = spawn_checker(source.clone());
        cmd.send(Command::Watch(Some("lab".into()))).unwrap();
        // Watching a lab checks it at once.
        assert_eq!(
            rounds.recv_timeout(Duration::from_millis(500)).unwrap().1,
            Ok(None)
        );
        // Nothing happens: no round before the tick.
        assert!(rounds.recv_timeout(Duration::from_millis(700)).is_err());
        let event = Instant::now();
        source.changes.fetch_add(1, Ordering::SeqCst);
        assert_eq!(
            rounds.recv_timeout(Duration::from_millis(600)).unwrap().1,
            Ok(None)
        );
        assert!(event.elapsed() < CHECK_EVERY / 2, "{:?}", event.elapsed());
        // Without events, the tick still comes.
        let tick = Instant::now();
        assert_eq!(rounds.recv_timeout(CHECK_EVERY * 2).unwrap().1, Ok(None));
        assert!(tick.elapsed() >= CHECK_EVERY - Duration::from_millis(200));
        assert_eq!(source.rounds.load(Ordering::SeqCst), 3);
    }
}
