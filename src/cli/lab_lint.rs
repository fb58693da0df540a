//! `kindling lab lint`.

use super::Output;
use super::lab::Common;
use kindling::lab::catalog::Catalog;
use kindling::lab::lint::{self, LintReport};
use kindling::progress::Progress;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Static lint decodes and validates lab files (every problem with file:line:column).\nFull lint then runs each lab on real Docker and its cluster: for every step, each check must\nfail before the solution, each lookalike wrong answer must leave its check failing, and the\nsolution must make every check pass. Clusters lint creates are deleted at the end; clusters\nthat already existed are reused and kept.\n\nExamples:\n  kindling lab lint --static\n  kindling lab lint --labs-dir ./my-labs\n  kindling lab lint docker-publish"
)]
pub struct Args {
    /// Labs to lint (default: all; with --labs-dir, all in that folder).
    pub labs: Vec<String>,
    /// Only decode and validate the files; run nothing.
    #[arg(long = "static")]
    pub static_only: bool,
    /// Keep the clusters lint created, to rerun lint or inspect them.
    #[arg(long)]
    pub keep_clusters: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

pub async fn run(args: Args, common: &Common, progress: Progress) -> anyhow::Result<()> {
    // With --labs-dir, lint just that folder: a teacher checks their own labs.
    let catalog = match &common.labs_dir {
        Some(dir) => Catalog::from_dir(dir)?,
        None => Catalog::bundled(),
    };
    let mut failed = false;
    for e in &catalog.broken {
        failed = true;
        eprintln!("{e}");
    }
    let mut selected = Vec::new();
    for id in &args.labs {
        selected.push(catalog.get(id)?);
    }
    if args.labs.is_empty() {
        selected = catalog.labs.iter().collect();
    }
    if args.static_only {
        for e in &selected {
            println!(
                "✓ {} ({}): {} steps, {} points",
                e.id(),
                e.file,
                e.lab.steps().len(),
                e.lab.total_points()
            );
        }
        if failed {
            anyhow::bail!(
                "{} lab file(s) have problems; fix the lines above",
                catalog.broken.len()
            );
        }
        return Ok(());
    }
    let mut reports: Vec<LintReport> = Vec::new();
    for e in &selected {
        let r = lint::lint(e, &common.store, common.lang, progress).await;
        if args.output == Output::Text {
            print_report(&r);
        }
        failed |= !r.ok();
        reports.push(r);
    }
    let created: Vec<String> = reports
        .iter()
        .filter_map(|r| r.created_cluster.clone())
        .collect();
    if !created.is_empty() && !args.keep_clusters {
        let docker = super::docker().await?;
        for name in &created {
            let step = progress.step(format!("Deleting lab cluster {name:?} (lint created it)"));
            kindling::cluster::delete::delete(&docker, name, &common.store.kubeconfig(name))
                .await?;
            let _ = std::fs::remove_file(common.store.kubeconfig(name));
            step.done();
        }
    }
    args.output.print_structured(&reports)?;
    if failed {
        let bad: Vec<&str> = reports
            .iter()
            .filter(|r| !r.ok())
            .map(|r| r.lab.as_str())
            .collect();
        anyhow::bail!(
            "lint failed for {}; fix the problems above",
            if bad.is_empty() {
                "lab files".to_string()
            } else {
                bad.join(", ")
            }
        );
    }
    Ok(())
}

fn print_report(r: &LintReport) {
    println!(
        "{} {} ({:.1}s)",
        if r.ok() { "✓" } else { "✗" },
        r.lab,
        r.millis as f64 / 1000.0
    );
    for line in &r.proved {
        println!("    ✓ {line}");
    }
    for line in &r.problems {
        println!("    ✗ {line}");
    }
}
