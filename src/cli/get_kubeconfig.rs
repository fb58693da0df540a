//! `kindling get kubeconfig`.

use super::NameArg;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub name: NameArg,
    /// Address the API server by the control-plane node's name, for use from containers on
    /// the `kindling` Docker network rather than from the host.
    #[arg(long)]
    pub internal: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let docker = super::docker().await?;
    let entry =
        kindling::cluster::info::kubeconfig(&docker, &args.name.name, args.internal).await?;
    print!("{}", entry.render());
    Ok(())
}
