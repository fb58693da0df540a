//! `kindling lab ...`: the subcommand group and what its commands share (language, catalog,
//! picking the lab a command is about).

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};
use kindling::lab::catalog::{self, Catalog, Entry};
use kindling::lab::model::Lang;
use kindling::lab::progress::Store;

use super::{
    lab_answer, lab_check, lab_hint, lab_lint, lab_list, lab_reset, lab_shell, lab_solve,
    lab_start, lab_status,
};

/// Guided labs: real docker and kubectl commands, checked as you go.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "A lab is a few steps, each checked against the real Docker engine or cluster.\n\nStart here:\n  kindling lab list                   the labs, with your progress\n  kindling lab start docker-publish   make what the lab needs and show step 1\n  kindling lab check                  did the current step work? (✓/✗ with what was seen)\n  kindling lab hint                   one more hint for the current step\n\nProgress is kept in $XDG_DATA_HOME/kindling (default ~/.local/share/kindling)."
)]
pub struct Args {
    /// Language of the lab text: en or zh (default: from LC_ALL/LANG, zh* is Chinese).
    #[arg(long, global = true, value_enum)]
    pub lang: Option<LangArg>,
    /// A folder of your own labs (DIR/<track>/<lab>/lab.yaml), added to the bundled ones.
    #[arg(long, global = true, value_name = "DIR")]
    pub labs_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: LabCommand,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum LangArg {
    En,
    Zh,
}

#[derive(Subcommand, Debug)]
pub enum LabCommand {
    /// List the labs with their track, time and your progress.
    List(lab_list::Args),
    /// Start a lab: build its images, create or reuse its cluster, run its setup.
    Start(lab_start::Args),
    /// Show a lab's steps, which are done and which is current.
    Status(lab_status::Args),
    /// Check the current step (or --step) and move on when it passes.
    Check(lab_check::Args),
    /// Reveal the next hint for the current step.
    Hint(lab_hint::Args),
    /// Run a step's solution (for teachers and demos).
    Solve(lab_solve::Args),
    /// Answer a quiz question.
    Answer(lab_answer::Args),
    /// Undo what the lab made and forget your progress in it.
    Reset(lab_reset::Args),
    /// A shell for one lab: type real commands, each step is re-checked as you go.
    Shell(lab_shell::Args),
    /// Prove labs are fair: checks fail before the solution, pass after, and lookalikes fail.
    Lint(lab_lint::Args),
}

/// What every lab command gets besides its own args.
pub struct Common {
    pub lang: Lang,
    pub labs_dir: Option<PathBuf>,
    pub store: Store,
}

impl Common {
    pub fn catalog(&self) -> anyhow::Result<Catalog> {
        let c = Catalog::load(self.labs_dir.as_deref())?;
        for e in &c.broken {
            eprintln!(
                "warning: a lab file does not load (`kindling lab lint --static` for details):\n{e}"
            );
        }
        Ok(c)
    }

    /// The lab named, else the one last started.
    pub fn pick<'a>(&self, catalog: &'a Catalog, id: Option<&str>) -> anyhow::Result<&'a Entry> {
        let id = match id {
            Some(i) => i.to_string(),
            None => self.store.current().ok_or(catalog::Error::NoneNamed)?,
        };
        Ok(catalog.get(&id)?)
    }
}

pub async fn run(args: Args, progress: kindling::progress::Progress) -> anyhow::Result<()> {
    let common = Common {
        lang: match args.lang {
            Some(LangArg::En) => Lang::En,
            Some(LangArg::Zh) => Lang::Zh,
            None => Lang::from_env(),
        },
        labs_dir: args.labs_dir,
        store: Store::default(),
    };
    match args.command {
        LabCommand::List(a) => lab_list::run(a, &common).await,
        LabCommand::Start(a) => lab_start::run(a, &common, progress).await,
        LabCommand::Status(a) => lab_status::run(a, &common).await,
        LabCommand::Check(a) => lab_check::run(a, &common).await,
        LabCommand::Hint(a) => lab_hint::run(a, &common).await,
        LabCommand::Solve(a) => lab_solve::run(a, &common).await,
        LabCommand::Answer(a) => lab_answer::run(a, &common).await,
        LabCommand::Reset(a) => lab_reset::run(a, &common).await,
        LabCommand::Lint(a) => lab_lint::run(a, &common, progress).await,
        LabCommand::Shell(a) => lab_shell::run(a, &common, progress).await,
    }
}

/// Print a step's title and text for the student.
pub fn print_step(entry: &Entry, index: usize, lang: Lang) {
    let lab = &entry.lab;
    let step = &lab.steps()[index];
    println!(
        "\n── {} {}/{}: {} ──\n",
        if lang == Lang::Zh { "步骤" } else { "Step" },
        index + 1,
        lab.steps().len(),
        step.title.value.get(lang)
    );
    println!("{}", entry.step_text(index, lang).trim_end());
    let quiz: Vec<_> = step
        .checks
        .iter()
        .filter_map(|c| match c.kind() {
            Some(kindling::lab::model::CheckKind::Quiz(q)) => lab.question(q),
            _ => None,
        })
        .collect();
    for q in quiz {
        println!("\n? {} ({})", q.question.value.get(lang), q.id.value);
        for (i, c) in q.choices.iter().enumerate() {
            println!("  {}) {}", i + 1, c.value.get(lang));
        }
        println!(
            "  → kindling lab answer {} {} <1-{}>",
            lab.id(),
            q.id.value,
            q.choices.len()
        );
    }
}
