//! `kindling lab solve`.

use super::lab::Common;
use kindling::lab::{runner, session};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Runs the step's solution commands (printing them first), for teachers and demos. The step\nis not marked done: `kindling lab check` still grades it."
)]
pub struct Args {
    /// The lab's id (default: the lab last started).
    pub lab: Option<String>,
    /// Solve this step instead of the current one.
    #[arg(long)]
    pub step: Option<String>,
}

pub async fn run(args: Args, common: &Common) -> anyhow::Result<()> {
    let catalog = common.catalog()?;
    let entry = common.pick(&catalog, args.lab.as_deref())?;
    let p = common.store.load(entry.id())?;
    let index = session::step_index(entry, &p, args.step.as_deref())?;
    let step = &entry.lab.steps()[index];
    let Some(solution) = step.solution.as_deref().filter(|s| !s.trim().is_empty()) else {
        println!(
            "Step {} has no commands to run (answer its quiz with `kindling lab answer`).",
            step.id.value
        );
        return Ok(());
    };
    for line in solution.lines() {
        println!("$ {line}");
    }
    let env = session::env(entry, &common.store);
    runner::run("solution", solution, &env, true).await?;
    println!("Now: kindling lab check");
    Ok(())
}
