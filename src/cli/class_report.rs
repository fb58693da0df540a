//! `kindling class report`: results folder → verified grades.csv and report.html.

use std::path::PathBuf;

use kindling::grade::report::{ClassReport, Roster};

use super::grade::load_key;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Every result's signature is checked against the class key. Tampered, unsigned, foreign-key,\nduplicate and unknown-student (not in --roster) results are listed and not counted.\n\nExample:\n  kindling class report results/ --roster roster.csv --key-file class.key --out report/"
)]
pub struct Args {
    /// Folder of result files (`kindling grade --format json` output), subfolders one deep.
    pub results_dir: PathBuf,
    /// Class list CSV with a header row (an id/student column, optionally name).
    #[arg(long, value_name = "CSV")]
    pub roster: Option<PathBuf>,
    /// Class key the results were signed with (without it nothing is verified).
    #[arg(long, value_name = "FILE", env = "KINDLING_CLASS_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Folder to write grades.csv and report.html into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let key = load_key(args.key_file.as_deref())?;
    let roster = args.roster.as_deref().map(Roster::load).transpose()?;
    anyhow::ensure!(
        args.results_dir.is_dir(),
        "results folder {} does not exist; pass the folder holding the students' result files",
        args.results_dir.display()
    );
    let report = ClassReport::build(&args.results_dir, roster.as_ref(), key.as_ref())?;
    let (csv, html) = report.write(&args.out)?;
    if key.is_none() {
        eprintln!(
            "warning: no --key-file: signatures were not verified, edited results cannot be detected"
        );
    }
    for f in &report.flagged {
        eprintln!("flagged: {}: {}", f.file, f.reason);
    }
    println!(
        "{} results counted, {} flagged, {} students → {}, {}",
        report.counted.len(),
        report.flagged.len(),
        report.students.len(),
        csv.display(),
        html.display()
    );
    Ok(())
}
