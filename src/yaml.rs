//! Strict YAML decoding that reports where it failed, for the `file:line:column: message` errors
//! of every file Kindling reads (cluster configs, lab files, check packs, quiz answers), and
//! that goes on past unknown fields and wrongly typed values so a file's every mistake of that
//! kind is reported at once.

use serde::de::DeserializeOwned;

/// How many decode errors one file reports before giving up.
const MAX_ERRORS: usize = 50;

/// A decode error: line and column (1-based) and the first line of its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

/// The line and column (1-based) of a decode error and its first line of text.
pub fn locate(e: &serde_saphyr::Error) -> (u64, u64, String) {
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default().trim();
    // The text repeats the position (`error: line 2 column 10: invalid u32`); it is given apart.
    let message = first
        .strip_prefix("error: ")
        .and_then(|m| m.strip_prefix(&format!("line {line} column {column}: ")))
        .unwrap_or(first)
        .to_string();
    (line, column, message)
}

/// Decode `text` strictly. On an error, the entry it points at (an unknown key, or a key whose
/// value has the wrong type, with the lines nested under it) is blanked out, keeping the line
/// numbers, and decoding goes on; every error found that way is returned, in file order, with
/// the value decoded without the blanked entries when it came to that (so its own validation
/// can be reported too). It stops at an error it cannot step over (inside a flow mapping, a
/// missing field) or at a field missing only because it was blanked.
pub fn decode_all<T: DeserializeOwned>(text: &str) -> (Option<T>, Vec<Located>) {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut errors: Vec<Located> = Vec::new();
    let mut blanked: Vec<String> = Vec::new();
    let mut value = None;
    loop {
        // With every entry blanked there is nothing left to learn from.
        if !errors.is_empty() && lines.iter().all(|l| l.trim().is_empty()) {
            break;
        }
        let e = match serde_saphyr::from_str::<T>(&lines.join("\n")) {
            Ok(v) => {
                value = Some(v);
                break;
            }
            Err(e) => e,
        };
        let (line, column, message) = locate(&e);
        let missing = missing_field(&message).map(str::to_string);
        if missing
            .as_ref()
            .is_some_and(|f| blanked.iter().any(|b| b == f))
        {
            break;
        }
        let repeated = errors
            .iter()
            .any(|l| (l.line, l.column, &l.message) == (line, column, &message));
        if !repeated {
            errors.push(Located {
                line,
                column,
                message,
            });
        }
        // Nothing can stand in for a missing field.
        if repeated || missing.is_some() || errors.len() >= MAX_ERRORS {
            break;
        }
        match blank_entry(&mut lines, line as usize, column as usize) {
            Some(key) => blanked.push(key),
            None => break,
        }
    }
    errors.sort_by_key(|l| (l.line, l.column));
    (value, errors)
}

fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

fn indent(s: &str) -> usize {
    s.len() - s.trim_start_matches(' ').len()
}

/// The key of a `key: value` or `key:` line (after its indentation), if it is one.
fn key_of(rest: &str) -> Option<&str> {
    let (key, after) = rest.split_once(':')?;
    let plain = !key.is_empty() && !key.contains(['{', '[', '"', '\'', '#', ' ']);
    (plain && (after.is_empty() || after.starts_with(' '))).then_some(key)
}

/// Blank the entry at `line` (1-based) and every deeper line under it; the entry's key, or
/// `None` when it cannot be removed without breaking the document around it.
fn blank_entry(lines: &mut [String], line: usize, column: usize) -> Option<String> {
    let at = line.checked_sub(1)?;
    let text = lines.get(at)?;
    let mut depth = indent(text);
    // A list item's first key (`- role: x`): the item stays, the key goes.
    let item = text[depth..].starts_with("- ");
    if item {
        depth += 2;
    }
    let rest = &text[depth..];
    let key = key_of(rest)?.to_string();
    // An error inside a flow mapping on this line (`title: {en: a, fr: b}`) is not this key's.
    let value = rest[key.len() + 1..].trim_start();
    if value.starts_with(['{', '[']) && column > depth + key.len() + 3 {
        return None;
    }
    let end = lines[at + 1..]
        .iter()
        .position(|l| !l.trim().is_empty() && indent(l) <= depth)
        .map_or(lines.len(), |p| at + 1 + p);
    for l in &mut lines[at + 1..end] {
        l.clear();
    }
    let siblings_after = lines[end..]
        .iter()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| indent(l) == depth);
    let first_child = lines[..at]
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| indent(l) < depth && l.trim_end().ends_with(':'));
    lines[at] = if !item && first_child && !siblings_after {
        // The parent's only entry: an empty mapping keeps the parent a mapping.
        format!("{}{{}}", " ".repeat(depth))
    } else if !item {
        String::new()
    } else if siblings_after {
        // The item's other keys follow on their own lines.
        format!("{}-", " ".repeat(depth - 2))
    } else {
        format!("{}- {{}}", " ".repeat(depth - 2))
    };
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Step {
        id: String,
        #[serde(default)]
        hints: Vec<String>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        name: String,
        minutes: u32,
        #[serde(default)]
        steps: Vec<Step>,
    }

    fn errors(text: &str) -> Vec<(u64, u64, String)> {
        decode_all::<Doc>(text)
            .1
            .into_iter()
            .map(|l| (l.line, l.column, l.message))
            .collect()
    }

    #[test]
    fn a_good_document_decodes() {
        let (d, e) = decode_all::<Doc>("name: a\nminutes: 3\nsteps:\n  - id: x\n");
        assert_eq!((d.unwrap().steps.len(), e), (1, vec![]));
    }

    #[test]
    fn every_unknown_field_and_wrong_type_is_reported_in_file_order() {
        let e = errors(
            "name: a\nminutes: ten\ncolour: red\nsteps:\n  - id: x\n    hint:\n      - one\n      - two\n    hints: [ok]\n  - id: y\n    extra: {a: 1}\n",
        );
        let at: Vec<(u64, u64)> = e.iter().map(|(l, c, _)| (*l, *c)).collect();
        assert_eq!(at, [(2, 10), (3, 1), (6, 5), (11, 5)], "{e:?}");
        assert!(e[0].2.contains("invalid"), "{e:?}");
        assert!(e[1].2.contains("unknown field `colour`"), "{e:?}");
        assert!(e[2].2.contains("unknown field `hint`"), "{e:?}");
        // What is left decodes, for the caller's own checks.
        let (d, _) = decode_all::<Doc>("name: a\nminutes: 1\ncolour: red\n");
        assert_eq!(d.unwrap().minutes, 1);
    }

    #[test]
    fn a_field_missing_because_it_was_blanked_is_not_reported_again() {
        // `minutes` is required: blanking its bad value makes it missing, which is no news.
        let e = errors("name: a\nminutes: [1]\nbad: 1\n");
        let at: Vec<(u64, u64)> = e.iter().map(|(l, c, _)| (*l, *c)).collect();
        assert_eq!(at, [(2, 10), (3, 1)], "{e:?}");
        assert!(!e.iter().any(|x| x.2.contains("missing")), "{e:?}");
    }

    #[test]
    fn a_truly_missing_field_is_reported_with_the_others() {
        let e = errors("name: a\ncolour: red\n");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e.iter().any(|x| x.2.contains("missing field `minutes`")),
            "{e:?}"
        );
    }

    #[test]
    fn a_list_items_first_key_goes_and_the_item_stays() {
        let e = errors("name: a\nminutes: 1\nsteps:\n  - idd: x\n    hints: [a]\n    bad: 1\n");
        let at: Vec<(u64, u64)> = e.iter().map(|(l, c, _)| (*l, *c)).collect();
        assert_eq!(at, [(4, 5), (5, 5), (6, 5)], "{e:?}");
        // The item has no `id` left, which is true: it was misspelled.
        assert!(e[1].2.contains("missing field `id`"), "{e:?}");
        // Alone in its item, the key leaves an empty mapping, which lacks `id`: decoding stops
        // there, as nothing can stand in for a required field.
        let e = errors("name: a\nminutes: 1\nsteps:\n  - idd: x\n  - id: y\n    bad: 1\n");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[1].2.contains("missing field `id`"), "{e:?}");
    }

    #[test]
    fn it_stops_where_it_cannot_step_over_an_error() {
        // Inside a flow mapping: one error, then stop.
        let e = errors("name: a\nminutes: 1\nsteps: [{id: x, k: 1}]\n");
        assert_eq!(e.len(), 1, "{e:?}");
        // Not valid YAML at all: one error.
        let e = errors("name: [a\n");
        assert_eq!(e.len(), 1, "{e:?}");
    }
}
