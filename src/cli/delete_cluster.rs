//! `kindling delete cluster`.

use anyhow::Context;
use kindling::progress::Progress;

use super::{KubeconfigArg, NameArg};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub name: NameArg,
    #[command(flatten)]
    pub kubeconfig: KubeconfigArg,
}

pub async fn run(args: Args, progress: Progress) -> anyhow::Result<()> {
    let name = &args.name.name;
    let docker = super::docker().await?;
    let step = progress.step(format!("Deleting cluster {name:?}"));
    let removed = kindling::cluster::delete::delete(&docker, name, &args.kubeconfig.path())
        .await
        .with_context(|| format!("could not delete cluster {name:?}"))?;
    step.done();
    if removed == 0 {
        progress.say(&format!(
            "cluster {name:?} did not exist; nothing to delete"
        ));
    }
    Ok(())
}
