//! `kindling export kubeconfig`.

use kindling::progress::Progress;

use super::{KubeconfigArg, NameArg};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub name: NameArg,
    #[command(flatten)]
    pub kubeconfig: KubeconfigArg,
    /// Address the API server by the control-plane node's name (see `get kubeconfig --internal`).
    #[arg(long)]
    pub internal: bool,
}

pub async fn run(args: Args, progress: Progress) -> anyhow::Result<()> {
    let docker = super::docker().await?;
    let entry =
        kindling::cluster::info::kubeconfig(&docker, &args.name.name, args.internal).await?;
    let path = args.kubeconfig.path();
    kindling::cluster::kubeconfig::merge(&path, &entry)?;
    progress.say(&format!(
        "Set kubectl context to {:?} in {}",
        entry.name,
        path.display()
    ));
    Ok(())
}
