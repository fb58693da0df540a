//! `kindling lab hint`.

use super::lab::Common;
use kindling::lab::session;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The lab's id (default: the lab last started).
    pub lab: Option<String>,
}

pub async fn run(args: Args, common: &Common) -> anyhow::Result<()> {
    let catalog = common.catalog()?;
    let entry = common.pick(&catalog, args.lab.as_deref())?;
    let mut p = common.store.load(entry.id())?;
    let index = session::step_index(entry, &p, None)?;
    let step = &entry.lab.steps()[index];
    let shown = p.hints.get(&step.id.value).copied().unwrap_or(0);
    if step.hints.is_empty() {
        println!("This step has no hints; `kindling lab solve` shows the solution.");
        return Ok(());
    }
    let upto = (shown + 1).min(step.hints.len());
    for (i, h) in step.hints.iter().take(upto).enumerate() {
        println!(
            "Hint {}/{}: {}",
            i + 1,
            step.hints.len(),
            h.value.get(common.lang).trim_end()
        );
    }
    if shown >= step.hints.len() {
        println!("(that was the last hint; `kindling lab solve` shows the solution)");
    }
    p.hints.insert(step.id.value.clone(), upto);
    common.store.save(&p)?;
    Ok(())
}
