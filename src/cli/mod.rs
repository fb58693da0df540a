//! The command line: one file per subcommand, each a clap args struct beside a thin handler.

mod book;
mod build_images;
mod build_node_image;
mod class;
mod class_grade;
mod class_report;
mod completion;
mod create_cluster;
mod delete_cluster;
mod delete_clusters;
mod export_kubeconfig;
mod export_logs;
mod get_clusters;
mod get_kubeconfig;
mod get_nodes;
mod grade;
mod lab;
mod lab_answer;
mod lab_check;
mod lab_hint;
mod lab_lint;
mod lab_list;
mod lab_reset;
mod lab_shell;
mod lab_solve;
mod lab_start;
mod lab_status;
mod learn;
mod load_docker_image;
mod load_image_archive;
mod node_init;
mod version;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use kindling::consts::DEFAULT_CLUSTER_NAME;
use kindling::progress::Progress;

/// Kindling runs Kubernetes clusters whose nodes are Docker containers, for learning and local
/// development. Real kubectl, helm and client libraries work against them; nothing needs a
/// registry or the internet once the node image is built.
#[derive(Parser, Debug)]
#[command(name = "kindling", version, propagate_version = true)]
#[command(
    after_help = "Start here:\n  kindling create cluster          one control-plane node\n  kubectl get nodes -o wide        kubectl is pointed at it already\n  kindling delete cluster          remove it again"
)]
pub struct Cli {
    /// Print only errors and results, no progress lines.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a cluster.
    #[command(subcommand)]
    Create(CreateCommand),
    /// Delete one cluster or all of them.
    #[command(subcommand)]
    Delete(DeleteCommand),
    /// List clusters and nodes, or print a cluster's kubeconfig.
    #[command(subcommand)]
    Get(GetCommand),
    /// Write a cluster's kubeconfig or logs to files.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Copy images from the host into a cluster's nodes (there is no registry).
    #[command(subcommand)]
    Load(LoadCommand),
    /// Build images Kindling needs.
    #[command(subcommand)]
    Build(BuildCommand),
    /// Guided labs: do real docker and kubectl tasks, get each step checked.
    Lab(lab::Args),
    /// The labs in a terminal UI: steps, hints, checks as you go and the live cluster.
    Learn(learn::Args),
    /// Read the course book in your browser, offline.
    Book(book::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion(completion::Args),
    /// Print the version of kindling and of the Kubernetes API it serves.
    Version(version::Args),
    /// Grade a lab on live state: points per check with evidence, signed with the class key.
    Grade(grade::Args),
    /// For teachers: grade a class's clusters, or turn a folder of results into a report.
    #[command(subcommand)]
    Class(class::ClassCommand),
    /// Commands that run inside a node container.
    #[command(subcommand, hide = true)]
    Node(NodeCommand),
}

#[derive(Subcommand, Debug)]
pub enum CreateCommand {
    /// Create a cluster from a kind (or Kindling) config file, building the node image if needed.
    Cluster(create_cluster::Args),
}

#[derive(Subcommand, Debug)]
pub enum DeleteCommand {
    /// Delete a cluster: its node containers, their volumes and its kubeconfig entry.
    Cluster(delete_cluster::Args),
    /// Delete several clusters (`--all` for every one).
    Clusters(delete_clusters::Args),
}

#[derive(Subcommand, Debug)]
pub enum GetCommand {
    /// List clusters.
    Clusters(get_clusters::Args),
    /// List a cluster's node containers.
    Nodes(get_nodes::Args),
    /// Print a cluster's admin kubeconfig.
    Kubeconfig(get_kubeconfig::Args),
}

#[derive(Subcommand, Debug)]
pub enum ExportCommand {
    /// Merge a cluster's kubeconfig into your kubeconfig file and switch to its context.
    Kubeconfig(export_kubeconfig::Args),
    /// Copy every component's log from every node into a folder.
    Logs(export_logs::Args),
}

#[derive(Subcommand, Debug)]
pub enum LoadCommand {
    /// Load images from the host's Docker engine into every node.
    DockerImage(load_docker_image::Args),
    /// Load an image archive (`docker save` output) into every node.
    ImageArchive(load_image_archive::Args),
}

#[derive(Subcommand, Debug)]
pub enum BuildCommand {
    /// Build the node image from the embedded build context and this kindling binary.
    NodeImage(build_node_image::Args),
    /// Build the bundled images (pause, toolbox, whoami, registry) into the host's engine.
    Images(build_images::Args),
}

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Run as PID 1 of a node: start and supervise the node's components.
    Init,
}

/// `--name`, shared by every command that acts on one cluster.
#[derive(Args, Debug, Clone)]
pub struct NameArg {
    /// The cluster's name.
    #[arg(short, long, default_value = DEFAULT_CLUSTER_NAME, env = "KINDLING_CLUSTER_NAME")]
    pub name: String,
}

/// `--kubeconfig`, shared by commands that write kubeconfig files.
#[derive(Args, Debug, Clone)]
pub struct KubeconfigArg {
    /// Kubeconfig file to update (default: first $KUBECONFIG entry, else ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

impl KubeconfigArg {
    pub fn path(&self) -> PathBuf {
        self.kubeconfig
            .clone()
            .unwrap_or_else(kindling::cluster::kubeconfig::default_path)
    }
}

/// Output formats for commands people script.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    #[default]
    Text,
    Json,
    Yaml,
}

impl Output {
    /// Print `value` as JSON or YAML; returns false for text, which the caller prints itself.
    pub fn print_structured<T: serde::Serialize>(self, value: &T) -> anyhow::Result<bool> {
        match self {
            Output::Text => Ok(false),
            Output::Json => {
                println!("{}", serde_json::to_string_pretty(value)?);
                Ok(true)
            }
            Output::Yaml => {
                print!("{}", serde_saphyr::to_string(value)?);
                Ok(true)
            }
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let progress = Progress { quiet: cli.quiet };
    match cli.command {
        Command::Create(CreateCommand::Cluster(a)) => create_cluster::run(a, progress).await,
        Command::Delete(DeleteCommand::Cluster(a)) => delete_cluster::run(a, progress).await,
        Command::Delete(DeleteCommand::Clusters(a)) => delete_clusters::run(a, progress).await,
        Command::Get(GetCommand::Clusters(a)) => get_clusters::run(a).await,
        Command::Get(GetCommand::Nodes(a)) => get_nodes::run(a).await,
        Command::Get(GetCommand::Kubeconfig(a)) => get_kubeconfig::run(a).await,
        Command::Export(ExportCommand::Kubeconfig(a)) => export_kubeconfig::run(a, progress).await,
        Command::Export(ExportCommand::Logs(a)) => export_logs::run(a, progress).await,
        Command::Load(LoadCommand::DockerImage(a)) => load_docker_image::run(a, progress).await,
        Command::Load(LoadCommand::ImageArchive(a)) => load_image_archive::run(a, progress).await,
        Command::Build(BuildCommand::NodeImage(a)) => build_node_image::run(a, progress).await,
        Command::Build(BuildCommand::Images(a)) => build_images::run(a, progress).await,
        Command::Lab(a) => lab::run(a, progress).await,
        Command::Learn(a) => learn::run(a).await,
        Command::Book(a) => book::run(a).await,
        Command::Completion(a) => completion::run(a),
        Command::Version(a) => version::run(a),
        Command::Grade(a) => grade::run(a).await,
        Command::Class(c) => class::run(c).await,
        Command::Node(NodeCommand::Init) => node_init::run().await,
    }
}

/// Connect to Docker, with the error that says how to fix a missing engine.
pub async fn docker() -> anyhow::Result<bollard::Docker> {
    Ok(kindling::cluster::docker::connect().await?)
}
