//! `kindling learn`: the lab TUI, on the same lab engine as `kindling lab`.

use std::io::IsTerminal;
use std::sync::Arc;

use super::lab::LangArg;
use kindling::lab::catalog::Catalog;
use kindling::lab::model::Lang;
use kindling::lab::progress::Store;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Pick a lab, read each step, type the commands in the lab shell (s) and watch the checks\nturn green; they run every 2 seconds and right after each Docker or cluster event. ? shows\nevery key, q quits. Progress is shared with `kindling lab` and kept in\n$XDG_DATA_HOME/kindling (default ~/.local/share/kindling). NO_COLOR=1 turns colors off."
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
    /// Append the moments of the first frame and of the first frame with cluster nodes to FILE
    /// (`first_frame UNIX_MICROS`, `cluster_shown UNIX_MICROS`), for `cargo bench --bench learn`.
    #[arg(long, hide = true, value_name = "FILE")]
    pub timing: Option<std::path::PathBuf>,
}

/// Appends `what UNIX_MICROS` to the timing file; the bench subtracts the moment it started us.
fn stamp(file: &std::path::Path, what: &str) {
    use std::io::Write;
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
    {
        let _ = writeln!(f, "{what} {micros}");
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
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
    let stamper = |what: &'static str| -> Option<Box<dyn FnOnce() + Send>> {
        let file = args.timing.clone()?;
        Some(Box::new(move || stamp(&file, what)))
    };
    let opts = kindling_tui::Options {
        theme: kindling_tui::Theme::from_env(),
        lab: args.lab,
        on_first_frame: stamper("first_frame"),
        on_cluster_shown: stamper("cluster_shown"),
    };
    // The TUI blocks on the terminal; the engine's futures run on this runtime meanwhile.
    tokio::task::spawn_blocking(move || kindling_tui::run(source, opts)).await??;
    // The background checker may be in the middle of a check on this runtime; shutting the
    // runtime down under it would print a panic after the terminal was given back. The terminal
    // is restored and progress is saved, so leave now.
    std::process::exit(0)
}
