//! `kindling book`: serve the course book locally, offline.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Context;
use clap::ValueEnum;
use kindling::book::Lang;
use kindling::book::server::Server;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "The book is built into kindling: no internet and no mdBook needed.\n\nExamples:\n  kindling book --open            read it in your browser\n  kindling book --lang zh         中文版\n  kindling book --port 0          any free port (printed)"
)]
pub struct Args {
    /// Language to open: en or zh (default: from LC_ALL/LANG, zh* is Chinese).
    #[arg(long, value_enum)]
    pub lang: Option<LangArg>,
    /// Port to serve on (0 picks a free one).
    #[arg(short, long, default_value_t = 3000)]
    pub port: u16,
    /// Address to listen on (127.0.0.1 keeps the book on this machine).
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub address: IpAddr,
    /// Open the book in the default web browser.
    #[arg(long)]
    pub open: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum LangArg {
    En,
    Zh,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let lang = match args.lang {
        Some(LangArg::En) => Lang::En,
        Some(LangArg::Zh) => Lang::Zh,
        None => Lang::from_env(),
    };
    let server = Server::bind(SocketAddr::new(args.address, args.port), lang).await?;
    let url = server.url();
    println!("The course book is at {url} (Ctrl-C to stop)");
    if args.open {
        open_browser(&url);
    }
    server.run().await.context("the book server stopped")
}

/// Best effort: a missing browser is not an error, the URL is printed anyway.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    if let Err(e) = std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        eprintln!("could not start {opener} ({e}): open {url} yourself");
    }
}
