//! `kindling lab start`.

use super::lab::{Common, print_step};
use kindling::lab::session;
use kindling::progress::Progress;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Builds the bundled images the lab uses, creates its cluster (or reuses a running one of\nthe same name and shape), runs the lab's setup and prints the current step.\n\nExample:\n  kindling lab start docker-publish"
)]
pub struct Args {
    /// The lab's id (`kindling lab list` shows them).
    pub lab: String,
}

pub async fn run(args: Args, common: &Common, progress: Progress) -> anyhow::Result<()> {
    let catalog = common.catalog()?;
    let entry = common.pick(&catalog, Some(&args.lab))?;
    let env = session::start(entry, &common.store, progress).await?;
    let p = common.store.load(entry.id())?;
    println!("{}", entry.lab.title.value.get(common.lang));
    println!("{}", entry.lab.summary.value.get(common.lang).trim_end());
    if let Some(kc) = &env.kubeconfig {
        println!(
            "\nThe lab's cluster is ready. Point kubectl at it in your shell with:\n  export KUBECONFIG={}",
            kc.display()
        );
    }
    println!("Files for the lab are in {}", env.workdir.display());
    match p.current_step(&entry.lab) {
        Some(i) => {
            print_step(entry, i, common.lang);
            println!("\nWhen you are done: kindling lab check   (stuck? kindling lab hint)");
        }
        None => println!(
            "\nEvery step is done already; `kindling lab reset {}` starts over.",
            entry.id()
        ),
    }
    Ok(())
}
