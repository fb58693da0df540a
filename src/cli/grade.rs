//! `kindling grade`: grade one lab on live state, signed with the class key.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::ValueEnum;
use kindling::grade::{self, Answers, GradeResult, Key, Options, Pack};
use kindling::lab::catalog::{Catalog, Entry};
use kindling::lab::model::Lang;
use kindling::lab::progress::{Store, write_atomic};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Runs every graded check of the lab against the cluster and Docker engine as they are now\n(never the progress file) and prints the points per step with what each check saw.\n\nQuiz answers come from --answers FILE (a YAML/JSON map, question: choice from 1), else from the\nanswers saved by `kindling lab answer` on this machine.\n\nExamples:\n  kindling grade docker-basics --student ana --key-file class.key --out ana.json --format json\n  kindling grade services-expose --kubeconfig ana.kubeconfig --format junit --out report.xml"
)]
pub struct Args {
    /// The lab to grade.
    pub lab: String,
    /// Student id recorded in the result (default: $USER).
    #[arg(long, env = "KINDLING_STUDENT")]
    pub student: Option<String>,
    /// The cluster to grade (default: the lab's cluster made by `kindling lab start`).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Class key to sign the result with (HMAC-SHA256); keep it away from students.
    #[arg(long, value_name = "FILE", env = "KINDLING_CLASS_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// A teacher's check pack: extra hidden checks per step (lab.yaml check syntax).
    #[arg(long = "checks", value_name = "FILE")]
    pub checks: Option<PathBuf>,
    /// Quiz answers to grade (question: choice from 1); default: this machine's saved answers.
    #[arg(long, value_name = "FILE")]
    pub answers: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Write the output to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// A folder of your own labs (DIR/<track>/<lab>/lab.yaml), added to the bundled ones.
    #[arg(long, value_name = "DIR")]
    pub labs_dir: Option<PathBuf>,
    /// Language of the titles in the result: en or zh (default: from LANG).
    #[arg(long, value_enum)]
    pub lang: Option<LangArg>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
    Junit,
    Gradescope,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum LangArg {
    En,
    Zh,
}

pub fn lang(arg: Option<LangArg>) -> Lang {
    match arg {
        Some(LangArg::En) => Lang::En,
        Some(LangArg::Zh) => Lang::Zh,
        None => Lang::from_env(),
    }
}

/// The catalog and the lab, with broken lab files reported but not fatal.
pub fn find_lab(labs_dir: Option<&Path>, id: &str) -> anyhow::Result<(Catalog, usize)> {
    let catalog = Catalog::load(labs_dir)?;
    catalog.get(id)?;
    let index = catalog
        .labs
        .iter()
        .position(|e| e.id() == id)
        .expect("the lab was found above");
    Ok((catalog, index))
}

pub fn load_key(path: Option<&Path>) -> anyhow::Result<Option<Key>> {
    Ok(path.map(Key::load).transpose()?)
}

pub fn load_pack(path: Option<&Path>, entry: &Entry) -> anyhow::Result<Option<Pack>> {
    Ok(path.map(|p| Pack::load(p, &entry.lab)).transpose()?)
}

/// Render a result in `format`.
pub fn render(r: &GradeResult, format: Format) -> String {
    match format {
        Format::Text => grade::format::text(r),
        Format::Json => r.to_json(),
        Format::Junit => grade::format::junit(r),
        Format::Gradescope => {
            serde_json::to_string_pretty(&grade::format::gradescope(r)).expect("json") + "\n"
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let (catalog, index) = find_lab(args.labs_dir.as_deref(), &args.lab)?;
    let entry = &catalog.labs[index];
    let student = args
        .student
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "student".into());
    grade::validate_student(&student)?;
    let key = load_key(args.key_file.as_deref())?;
    let pack = load_pack(args.checks.as_deref(), entry)?;
    let store = Store::default();
    let answers = match &args.answers {
        Some(path) => Answers::load(path, &entry.lab)?,
        None => {
            // Only the answers are read from progress: steps marked done there count for
            // nothing, every check runs again here.
            let p = store.load(entry.id())?;
            if p.answers.is_empty() {
                Answers::none()
            } else {
                Answers {
                    choices: p.answers,
                    from: "progress".into(),
                }
            }
        }
    };
    let kubeconfig = match args.kubeconfig {
        Some(k) => {
            anyhow::ensure!(
                k.is_file(),
                "kubeconfig {} does not exist; pass the student's cluster kubeconfig",
                k.display()
            );
            Some(k)
        }
        None => entry
            .lab
            .needs
            .cluster
            .as_ref()
            .map(|c| store.kubeconfig(&c.name.value)),
    };
    let opts = Options {
        student,
        kubeconfig,
        answers,
        pack,
        lang: lang(args.lang),
        remote: false,
        workdir: store.workdir(entry.id()),
    };
    let mut result = grade::grade(entry, &opts).await;
    if let Some(key) = &key {
        result.sign(key);
    }
    let text = render(&result, args.format);
    match &args.out {
        Some(path) => {
            write_atomic(path, text.as_bytes())
                .with_context(|| format!("could not write the result to {}", path.display()))?;
            eprintln!(
                "{} for {}: {}/{} points{} → {}",
                result.lab.id,
                result.student,
                result.score,
                result.max_score,
                if key.is_some() {
                    ", signed"
                } else {
                    ", not signed"
                },
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(())
}
