//! `kindling lab reset`.

use super::lab::Common;
use kindling::lab::session;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Runs the lab's cleanup (removing what the lab's steps made) and forgets your progress.\nThe lab's cluster stays; delete it with `kindling delete cluster --name NAME`."
)]
pub struct Args {
    /// The lab's id (default: the lab last started).
    pub lab: Option<String>,
}

pub async fn run(args: Args, common: &Common) -> anyhow::Result<()> {
    let catalog = common.catalog()?;
    let entry = common.pick(&catalog, args.lab.as_deref())?;
    session::reset(entry, &common.store).await?;
    println!(
        "Lab {} is reset. `kindling lab start {}` begins again.",
        entry.id(),
        entry.id()
    );
    Ok(())
}
