//! `kindling class ...`: what a teacher runs over a whole class.

use clap::Subcommand;

use super::{class_grade, class_report};

#[derive(Subcommand, Debug)]
pub enum ClassCommand {
    /// Verify a folder of results and write grades.csv and report.html.
    Report(class_report::Args),
    /// Grade many students' live clusters at once, one kubeconfig per student.
    Grade(class_grade::Args),
}

pub async fn run(cmd: ClassCommand) -> anyhow::Result<()> {
    match cmd {
        ClassCommand::Report(a) => class_report::run(a),
        ClassCommand::Grade(a) => class_grade::run(a).await,
    }
}
