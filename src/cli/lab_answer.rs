//! `kindling lab answer`.

use super::lab::Common;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  kindling lab answer docker-publish bridge-ip 2\n\nChoices count from 1 as `kindling lab start` and `check` print them (a, b, c also work)."
)]
pub struct Args {
    /// The lab's id, then the question's id and your choice; the lab may be left out.
    #[arg(num_args = 2..=3, required = true, value_names = ["LAB", "QUESTION", "CHOICE"])]
    pub words: Vec<String>,
}

pub async fn run(args: Args, common: &Common) -> anyhow::Result<()> {
    let (lab, question, choice) = match args.words.as_slice() {
        [q, c] => (None, q.as_str(), c.as_str()),
        [l, q, c] => (Some(l.as_str()), q.as_str(), c.as_str()),
        _ => unreachable!("clap takes 2 or 3 words"),
    };
    let catalog = common.catalog()?;
    let entry = common.pick(&catalog, lab)?;
    let Some(q) = entry.lab.question(question) else {
        anyhow::bail!(
            "lab {} has no question {question:?}; its questions are {}",
            entry.id(),
            entry
                .lab
                .quiz
                .iter()
                .map(|q| q.id.value.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let n = q.choices.len();
    let index = parse_choice(choice, n).ok_or_else(|| {
        anyhow::anyhow!(
            "{choice:?} is not a choice of question {question}; answer with a number from 1 to {n}"
        )
    })?;
    let mut p = common.store.load(entry.id())?;
    p.answers.insert(question.to_string(), index);
    common.store.save(&p)?;
    println!(
        "Saved answer {} ({}) to {question}. `kindling lab check` grades it.",
        index + 1,
        q.choices[index].value.get(common.lang)
    );
    Ok(())
}

/// `2` or `b` → index 1.
pub fn parse_choice(s: &str, n: usize) -> Option<usize> {
    let i = match s.parse::<usize>() {
        Ok(k) => k.checked_sub(1)?,
        Err(_) => {
            let c = s.trim().to_ascii_lowercase();
            let mut chars = c.chars();
            let (Some(ch), None) = (chars.next(), chars.next()) else {
                return None;
            };
            (ch as usize).checked_sub('a' as usize)?
        }
    };
    (i < n).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_are_numbers_from_one_or_letters() {
        assert_eq!(parse_choice("1", 3), Some(0));
        assert_eq!(parse_choice("b", 3), Some(1));
        assert_eq!(parse_choice("C", 3), Some(2));
        assert_eq!(parse_choice("0", 3), None);
        assert_eq!(parse_choice("4", 3), None);
        assert_eq!(parse_choice("dd", 3), None);
    }
}
