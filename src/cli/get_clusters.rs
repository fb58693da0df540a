//! `kindling get clusters`.

use super::Output;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let docker = super::docker().await?;
    let names = kindling::cluster::delete::cluster_names(&docker).await?;
    if args.output.print_structured(&names)? {
        return Ok(());
    }
    if names.is_empty() {
        eprintln!("No kindling clusters found.");
    }
    for n in names {
        println!("{n}");
    }
    Ok(())
}
