//! `kindling lab list`.

use serde::Serialize;

use super::Output;
use super::lab::Common;
use kindling::lab::session::bar;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Serialize)]
struct Row {
    id: String,
    track: String,
    title: String,
    minutes: u32,
    steps: usize,
    done: usize,
    points: u32,
    earned: u32,
    cluster: Option<String>,
}

pub async fn run(args: Args, common: &Common) -> anyhow::Result<()> {
    let catalog = common.catalog()?;
    let mut rows = Vec::new();
    for e in &catalog.labs {
        let p = common.store.load(e.id())?;
        rows.push(Row {
            id: e.id().to_string(),
            track: e.lab.track.value.clone(),
            title: e.lab.title.value.get(common.lang).to_string(),
            minutes: e.lab.minutes.value,
            steps: e.lab.steps().len(),
            done: p.steps_done(&e.lab),
            points: e.lab.total_points(),
            earned: p.points_earned(),
            cluster: e.lab.needs.cluster.as_ref().map(|c| c.name.value.clone()),
        });
    }
    if args.output.print_structured(&rows)? {
        return Ok(());
    }
    if rows.is_empty() {
        eprintln!("No labs found.");
        return Ok(());
    }
    let idw = rows.iter().map(|r| r.id.len()).max().unwrap_or(2).max(2);
    let tw = rows.iter().map(|r| r.track.len()).max().unwrap_or(5).max(5);
    println!(
        "{:idw$}  {:tw$}  {:>4}  {:16}  TITLE",
        "ID", "TRACK", "MIN", "PROGRESS"
    );
    for r in rows {
        println!(
            "{:idw$}  {:tw$}  {:>4}  {:16}  {}",
            r.id,
            r.track,
            r.minutes,
            bar(r.done, r.steps, 10),
            r.title
        );
    }
    Ok(())
}
