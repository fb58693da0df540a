//! `kindling version`.

use serde_json::json;

use super::Output;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let v = json!({
        "kindling": env!("CARGO_PKG_VERSION"),
        "kubernetes": kindling::consts::KUBE_VERSION,
    });
    if !args.output.print_structured(&v)? {
        println!(
            "kindling {} (Kubernetes API {})",
            env!("CARGO_PKG_VERSION"),
            kindling::consts::KUBE_VERSION
        );
    }
    Ok(())
}
