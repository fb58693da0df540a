//! `kindling build images`.

use kindling::nodeimage::{BuildOptions, bundled};
use kindling::progress::Progress;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Builds the images pods and labs use into this machine's Docker engine, from the same\nDebian base as the node image (no registry is needed): the pause image, kindling/toolbox\n(sh, curl, dig, ip, tcpdump, nc), kindling/whoami (a web server answering with its\nhostname and IPs) and kindling/registry. Only missing or outdated images are built;\n`create cluster` and `lab start` do this too. Prints each image's reference."
)]
pub struct Args {
    /// Base image to build on (default: debian:bookworm-slim, else a bootstrapped one).
    #[arg(long)]
    pub base_image: Option<String>,
    /// Debian mirror for debootstrap, e.g. a classroom's local mirror.
    #[arg(long)]
    pub debian_mirror: Option<String>,
}

pub async fn run(args: Args, progress: Progress) -> anyhow::Result<()> {
    let docker = super::docker().await?;
    let opts = BuildOptions {
        base_image: args.base_image,
        debian_mirror: args.debian_mirror,
        ..Default::default()
    };
    for reference in bundled::ensure(&docker, &opts, progress).await? {
        println!("{reference}");
    }
    Ok(())
}
