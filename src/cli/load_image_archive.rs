//! `kindling load image-archive`.

use kindling::progress::Progress;

use super::NameArg;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  docker save app:dev -o app.tar\n  kindling load image-archive app.tar"
)]
pub struct Args {
    /// An image archive made by `docker save` (or an OCI archive).
    pub file: String,
    #[command(flatten)]
    pub name: NameArg,
    /// Only these nodes (comma-separated names); default every node.
    #[arg(long, value_delimiter = ',')]
    pub nodes: Vec<String>,
}

pub async fn run(args: Args, progress: Progress) -> anyhow::Result<()> {
    let docker = super::docker().await?;
    let step = progress.step(format!(
        "Loading {} into cluster {:?}",
        args.file, args.name.name
    ));
    let nodes =
        kindling::cluster::load::archive(&docker, &args.name.name, &args.file, &args.nodes).await?;
    step.done();
    for n in nodes {
        println!("{n}: loaded {}", args.file);
    }
    Ok(())
}
