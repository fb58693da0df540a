//! The `kindling` multi-call binary: the CLI on the host, a node component under its real name.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let name = std::path::Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The CNI plugin is short-lived and synchronous: answer before starting any runtime.
    if name == "flannel" {
        return kindling::node::flannel::cni::main();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // Inside a node the binary is linked under each component's name (see node-image/).
    let result = match name.as_str() {
        "kube-apiserver" => rt.block_on(kindling::node::apiserver::run(
            kindling::node::apiserver::Args::parse(),
        )),
        "kubelet" => rt.block_on(kindling::node::kubelet::run()),
        "kube-controller-manager" => rt.block_on(kindling::node::controllers::run()),
        "flanneld" => rt.block_on(kindling::node::flannel::run()),
        "kube-scheduler" => rt.block_on(kindling::node::scheduler::run()),
        "kube-proxy" => rt.block_on(kindling::node::proxy::run()),
        "coredns" => rt.block_on(kindling::node::dns::run()),
        _ => rt.block_on(cli::run(cli::Cli::parse())),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
