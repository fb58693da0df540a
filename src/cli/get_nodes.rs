//! `kindling get nodes`.

use super::{NameArg, Output};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub name: NameArg,
    /// Output format; text prints one node name a line, like kind.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let docker = super::docker().await?;
    let nodes = kindling::cluster::info::nodes(&docker, &args.name.name).await?;
    if args.output.print_structured(&nodes)? {
        return Ok(());
    }
    if nodes.is_empty() {
        eprintln!("No kindling nodes found for cluster {:?}.", args.name.name);
    }
    for n in nodes {
        println!("{}", n.name);
    }
    Ok(())
}
