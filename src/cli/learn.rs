//! `kindling learn`: the lab TUI, on the same lab engine as `kindling lab`.

use std::io::IsTerminal;
use std::sync::Arc;

use super::lab::LangArg;
use kindling::lab::catalog::Catalog;
use kindling::lab::model::Lang;
use kindling::lab::progress::Store;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Pick a lab, read each step, type the commands in the lab shell (s) and watch the checks\nturn green; they run every 2 seconds. ? shows every key, q quits. Progress is shared with\n`kindling lab` and kept in $XDG_DATA_HOME/kindling (default ~/.local/share/kindling).\nNO_COLOR=1 turns colors off."
)]
pub struct Args {
    /// Open this lab right away instead of the picker.
    pub lab: Option<String>,
    /// Language of the lab text: en or zh (default: from LC_ALL/LANG, zh* is Chinese).
    #[arg(long, value_enum)]
    pub lang: Option<LangArg>,
    /// A folder of your own labs (DIR/<track>/<lab>/lab.yaml), added to the bundled ones.
    #[arg(long, value_name = "DIR")]
    pub labs_dir: Option<std::path::PathBuf>,
    /// Print how long the first frame took (to stderr, after quitting).
    #[arg(long, hide = true)]
    pub timing: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    if !std::io::stdout().is_terminal() {
        anyhow::bail!("kindling learn needs a terminal; use `kindling lab` commands in scripts");
    }
    let catalog = Catalog::load(args.labs_dir.as_deref())?;
    if let Some(id) = &args.lab {
        catalog.get(id)?;
    }
    let lang = match args.lang {
        Some(LangArg::En) => Lang::En,
        Some(LangArg::Zh) => Lang::Zh,
        None => Lang::from_env(),
    };
    let source = Arc::new(kindling::learn::Source::new(
        catalog,
        Store::default(),
        lang,
        args.labs_dir.clone(),
    ));
    let first = Arc::new(std::sync::Mutex::new(None));
    let first2 = first.clone();
    let opts = kindling_tui::Options {
        theme: kindling_tui::Theme::from_env(),
        lab: args.lab,
        on_first_frame: Some(Box::new(move |_| {
            *first2.lock().expect("timing lock") = Some(started.elapsed());
        })),
    };
    // The TUI blocks on the terminal; the engine's futures run on this runtime meanwhile.
    tokio::task::spawn_blocking(move || kindling_tui::run(source, opts)).await??;
    if args.timing
        && let Some(t) = *first.lock().expect("timing lock")
    {
        eprintln!("first frame after {} ms", t.as_millis());
    }
    // The background checker may be in the middle of a check on this runtime; shutting the
    // runtime down under it would print a panic after the terminal was given back. The terminal
    // is restored and progress is saved, so leave now.
    std::process::exit(0)
}
