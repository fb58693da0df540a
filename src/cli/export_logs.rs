//! `kindling export logs`.

use std::path::PathBuf;

use kindling::progress::Progress;

use super::NameArg;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub name: NameArg,
    /// Folder to write into (default: a new folder under the system temp dir).
    pub dir: Option<PathBuf>,
}

pub async fn run(args: Args, progress: Progress) -> anyhow::Result<()> {
    let dir = args.dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "kindling-logs-{}-{}",
            args.name.name,
            jiff::Timestamp::now().as_second()
        ))
    });
    let docker = super::docker().await?;
    let step = progress.step(format!("Exporting logs of cluster {:?}", args.name.name));
    let files = kindling::cluster::info::export_logs(&docker, &args.name.name, &dir).await?;
    step.done();
    progress.say(&format!("{} files", files.len()));
    println!("{}", dir.display());
    Ok(())
}
