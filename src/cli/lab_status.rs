//! `kindling lab status`.

use super::lab::Common;
use kindling::lab::session::bar;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The lab's id (default: the lab last started).
    pub lab: Option<String>,
}

pub async fn run(args: Args, common: &Common) -> anyhow::Result<()> {
    let catalog = common.catalog()?;
    let entry = common.pick(&catalog, args.lab.as_deref())?;
    let lab = &entry.lab;
    let p = common.store.load(entry.id())?;
    let current = p.current_step(lab);
    println!("{} — {}", lab.id(), lab.title.value.get(common.lang));
    println!(
        "{}  {} of {} points",
        bar(p.steps_done(lab), lab.steps().len(), 20),
        p.points_earned(),
        lab.total_points()
    );
    for (i, s) in lab.steps().iter().enumerate() {
        let id = &s.id.value;
        let mark = if p.done.contains(id) {
            "✓"
        } else if p.skipped.contains(id) {
            "–"
        } else if current == Some(i) {
            "▶"
        } else {
            " "
        };
        println!(
            "  {mark} {}. {} ({id}, {} pt)",
            i + 1,
            s.title.value.get(common.lang),
            s.points()
        );
    }
    if !p.started {
        println!("\nNot started yet: kindling lab start {}", lab.id());
    } else if current.is_none() {
        println!("\nLab complete.");
    }
    Ok(())
}
