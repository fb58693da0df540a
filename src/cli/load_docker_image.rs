//! `kindling load docker-image`.

use kindling::progress::Progress;

use super::{NameArg, Output};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Clusters have no registry: images you build on the host reach pods this way.\n\nExample:\n  docker build -t app:dev .\n  kindling load docker-image app:dev\n  kubectl run app --image=app:dev --image-pull-policy=IfNotPresent"
)]
pub struct Args {
    /// Images in the host's Docker engine, e.g. app:dev.
    #[arg(required = true)]
    pub images: Vec<String>,
    #[command(flatten)]
    pub name: NameArg,
    /// Only these nodes (comma-separated names); default every node.
    #[arg(long, value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// Output format for the per-node result.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

pub async fn run(args: Args, progress: Progress) -> anyhow::Result<()> {
    let docker = super::docker().await?;
    let step = progress.step(format!(
        "Loading {} into cluster {:?}",
        args.images.join(", "),
        args.name.name
    ));
    let results =
        kindling::cluster::load::docker_images(&docker, &args.name.name, &args.images, &args.nodes)
            .await?;
    step.done();
    if args.output.print_structured(&results)? {
        return Ok(());
    }
    for r in results {
        for i in &r.loaded {
            println!("{}: loaded {i}", r.node);
        }
        for i in &r.skipped {
            println!("{}: {i} already present, skipped", r.node);
        }
    }
    Ok(())
}
