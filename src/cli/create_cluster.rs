//! `kindling create cluster`.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use kindling::cluster::config::Cluster;
use kindling::cluster::create::{CreateOptions, create};
use kindling::nodeimage::BuildOptions;
use kindling::progress::Progress;

use super::{KubeconfigArg, NameArg};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  kindling create cluster\n  kindling create cluster --name dev --config kind.yaml\n  cat kind.yaml | kindling create cluster --config -\n\nThe config is kind's own format (kind: Cluster, apiVersion: kind.x-k8s.io/v1alpha4):\nnodes with roles, labels, extraPortMappings and extraMounts; networking.podSubnet,\nserviceSubnet, apiServerAddress, apiServerPort, kubeProxyMode."
)]
pub struct Args {
    #[command(flatten)]
    pub name: NameArg,
    /// Cluster config file (kind's v1alpha4 format), or - for standard input.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Node image to use instead of the one built from this binary.
    #[arg(long)]
    pub image: Option<String>,
    /// How long to wait for every node to be Ready, e.g. 90s or 2m (0 to not wait).
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub wait: Duration,
    /// Keep the node containers if creation fails, to inspect them.
    #[arg(long)]
    pub retain: bool,
    #[command(flatten)]
    pub kubeconfig: KubeconfigArg,
    /// Debian mirror for bootstrapping the base image when none can be pulled.
    #[arg(long)]
    pub debian_mirror: Option<String>,
}

/// Parse `90s`, `2m`, `1m30s`, `500ms` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration; use forms like 30s, 2m, 1m30s");
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| bad())?;
        num.clear();
        total += match c {
            'h' => Duration::from_secs(n * 3600),
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                Duration::from_millis(n)
            }
            'm' => Duration::from_secs(n * 60),
            's' => Duration::from_secs(n),
            _ => return Err(bad()),
        };
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

fn load_config(path: &Option<PathBuf>) -> anyhow::Result<Cluster> {
    let Some(path) = path else {
        return Ok(Cluster::default_config());
    };
    let (file, text) = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("could not read the cluster config from standard input")?;
        ("<stdin>".to_string(), s)
    } else {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("could not read cluster config {}", path.display()))?;
        (path.display().to_string(), text)
    };
    Ok(Cluster::parse(&file, &text)?)
}

pub async fn run(args: Args, progress: Progress) -> anyhow::Result<()> {
    let config = load_config(&args.config)?;
    for field in config.ignored_fields() {
        progress.say(&format!(
            "note: {field} is accepted for kind compatibility but has no effect in Kindling"
        ));
    }
    // A name in the config file applies unless --name was given explicitly.
    let name = match (&config.name, args.name.name.as_str()) {
        (Some(n), kindling::consts::DEFAULT_CLUSTER_NAME) => n.clone(),
        _ => args.name.name.clone(),
    };
    let docker = super::docker().await?;
    let opts = CreateOptions {
        name: name.clone(),
        config,
        image: args.image,
        wait: args.wait,
        retain: args.retain,
        kubeconfig: args.kubeconfig.path(),
        build: BuildOptions {
            debian_mirror: args.debian_mirror,
            ..Default::default()
        },
    };
    let created = create(&docker, &opts, progress)
        .await
        .with_context(|| format!("could not create cluster {name:?}"))?;
    progress.say(&format!(
        "\nCluster {name:?} is up: {} node(s), API server at {}.\nkubectl's context is now {:?}. Try:\n\n  kubectl get nodes -o wide\n\nDelete it with `kindling delete cluster{}`.",
        created.nodes.len(),
        created.server,
        created.context,
        if name == kindling::consts::DEFAULT_CLUSTER_NAME { String::new() } else { format!(" --name {name}") },
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubectl_timeouts() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5x").is_err());
    }
}
