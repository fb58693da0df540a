//! The `kindling` multi-call binary: the CLI on the host, a node component under its real name.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let name = std::path::Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = match name.as_str() {
        "kube-apiserver" => rt.block_on(kindling::node::apiserver::run(
            kindling::node::apiserver::Args::parse(),
        )),
        _ => Ok(()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
