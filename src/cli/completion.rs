//! `kindling completion`.

use clap::CommandFactory;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  source <(kindling completion bash)\n  kindling completion zsh > \"${fpath[1]}/_kindling\""
)]
pub struct Args {
    /// The shell to print a completion script for.
    pub shell: clap_complete::Shell,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut cmd = super::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "kindling", &mut std::io::stdout());
    Ok(())
}
