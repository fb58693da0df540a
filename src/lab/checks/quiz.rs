//! `quiz` checks: pass when the student's saved answer to a question is the right choice.

use super::{Context, Outcome};

pub fn run(question: &str, ctx: &Context) -> Outcome {
    let Some(q) = ctx.lab.question(question) else {
        return Outcome::unable(format!("the lab has no question {question:?}"));
    };
    let lab = ctx.lab.id();
    match ctx.answers.get(question) {
        None => Outcome::fail(vec![format!(
            "✗ question {question} is not answered yet; answer it with `kindling lab answer {lab} {question} <choice>`"
        )]),
        Some(a) if *a == q.answer.value => Outcome::pass(vec![format!(
            "✓ question {question}: answered choice {}",
            a + 1
        )]),
        Some(a) => Outcome::fail(vec![format!(
            "✗ question {question}: choice {} is not right; think again and answer with `kindling lab answer {lab} {question} <choice>`",
            a + 1
        )]),
    }
}
