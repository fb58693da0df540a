//! `kindling lab check`.

use super::Output;
use super::lab::{Common, print_step};
use kindling::lab::session;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Runs the current step's checks against the real engine and cluster and prints what each\nsaw. When all pass, the step is done and the next one is shown. Exits 1 when a check fails."
)]
pub struct Args {
    /// The lab's id (default: the lab last started).
    pub lab: Option<String>,
    /// Check this step instead of the current one.
    #[arg(long)]
    pub step: Option<String>,
    /// Output format (json/yaml print the results with their evidence).
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

pub async fn run(args: Args, common: &Common) -> anyhow::Result<()> {
    let catalog = common.catalog()?;
    let entry = common.pick(&catalog, args.lab.as_deref())?;
    let p = common.store.load(entry.id())?;
    let index = session::step_index(entry, &p, args.step.as_deref())?;
    let (report, p) = session::check(entry, &common.store, index, common.lang).await?;
    if !args.output.print_structured(&report)? {
        let step = &entry.lab.steps()[index];
        println!("{} ({})", step.title.value.get(common.lang), step.id.value);
        for c in &report.checks {
            println!(
                "  {} {}  [{}/{} pt]",
                if c.passed { "✓" } else { "✗" },
                c.title,
                c.earned,
                c.points
            );
            for line in &c.evidence {
                println!("      {line}");
            }
        }
        if report.checks.is_empty() {
            println!("  (nothing to check in this step)");
        }
        if report.passed {
            match p.current_step(&entry.lab) {
                Some(next) => print_step(entry, next, common.lang),
                None => println!(
                    "\n✓ Lab complete: {} of {} points.",
                    p.points_earned(),
                    entry.lab.total_points()
                ),
            }
        } else {
            println!("\nNot yet. `kindling lab hint` gives a hint.");
        }
    }
    if report.passed {
        Ok(())
    } else {
        std::process::exit(1)
    }
}
