//! `kindling delete clusters`.

use anyhow::Context;
use kindling::progress::Progress;

use super::KubeconfigArg;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  kindling delete clusters dev test\n  kindling delete clusters --all"
)]
pub struct Args {
    /// Clusters to delete.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub names: Vec<String>,
    /// Delete every Kindling cluster.
    #[arg(short = 'A', long)]
    pub all: bool,
    #[command(flatten)]
    pub kubeconfig: KubeconfigArg,
}

pub async fn run(args: Args, progress: Progress) -> anyhow::Result<()> {
    let docker = super::docker().await?;
    let names = if args.all {
        kindling::cluster::delete::cluster_names(&docker).await?
    } else {
        args.names
    };
    for name in &names {
        let step = progress.step(format!("Deleting cluster {name:?}"));
        kindling::cluster::delete::delete(&docker, name, &args.kubeconfig.path())
            .await
            .with_context(|| format!("could not delete cluster {name:?}"))?;
        step.done();
    }
    if names.is_empty() {
        progress.say("no clusters to delete");
    }
    Ok(())
}
