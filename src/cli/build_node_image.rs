//! `kindling build node-image`.

use kindling::nodeimage::{BuildOptions, ensure};
use kindling::progress::Progress;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "The image holds real etcd, containerd, runc and CNI plugins from Debian plus this\nkindling binary. Its tag is a hash of both, so a changed binary gets a new image.\nWithout a registry the Debian base is bootstrapped with debootstrap (needs root)."
)]
pub struct Args {
    /// Tag for the image (default: kindling/node:<content hash>).
    #[arg(long)]
    pub image: Option<String>,
    /// Base image to build on (default: debian:bookworm-slim, else a bootstrapped one).
    #[arg(long)]
    pub base_image: Option<String>,
    /// Debian mirror for debootstrap, e.g. a classroom's local mirror.
    #[arg(long)]
    pub debian_mirror: Option<String>,
    /// Rebuild even if the image exists.
    #[arg(long)]
    pub force: bool,
    /// Rebuild every layer without Docker's build cache (implies --force).
    #[arg(long)]
    pub no_cache: bool,
}

pub async fn run(args: Args, progress: Progress) -> anyhow::Result<()> {
    let docker = super::docker().await?;
    let opts = BuildOptions {
        image: args.image,
        base_image: args.base_image,
        debian_mirror: args.debian_mirror,
        force: args.force,
        no_cache: args.no_cache,
    };
    let tag = ensure(&docker, &opts, progress).await?;
    println!("{tag}");
    Ok(())
}
