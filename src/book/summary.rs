//! The book's table of contents, read from `SUMMARY.md` the way mdBook reads it: `# Part`
//! headings, `[Title](path.md)` prefix chapters and `- [Title](path.md)` list items.

/// One line of the table of contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A part title (`# English`), shown as a heading in the navigation.
    Part(String),
    /// A chapter: its title, its Markdown path relative to `book/src`, and its nesting depth.
    Chapter {
        title: String,
        path: String,
        depth: usize,
    },
}

/// Parses `SUMMARY.md`. Lines that are neither parts nor chapter links are ignored, as mdBook
/// ignores the `# Summary` title.
pub fn parse(text: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut seen_title = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(h) = trimmed.strip_prefix("# ") {
            // mdBook's first `#` heading is the summary's own title, not a part.
            if seen_title {
                items.push(Item::Part(h.trim().to_string()));
            }
            seen_title = true;
            continue;
        }
        let indent = line.len() - trimmed.len();
        let link = trimmed
            .strip_prefix("- ")
            .or_else(|| trimmed.strip_prefix("* "))
            .unwrap_or(trimmed);
        if let Some((title, path)) = link_parts(link) {
            items.push(Item::Chapter {
                title,
                path,
                depth: indent / 2,
            });
        }
    }
    items
}

/// `[Title](path)` → (Title, path).
fn link_parts(s: &str) -> Option<(String, String)> {
    let rest = s.strip_prefix('[')?;
    let close = rest.find("](")?;
    let title = &rest[..close];
    let path = rest[close + 2..].strip_suffix(')')?;
    Some((title.to_string(), path.to_string()))
}

/// The chapters in reading order, with the part each belongs to (`None` before the first part).
pub fn chapters(items: &[Item]) -> Vec<(Option<&str>, &str, &str)> {
    let mut part = None;
    let mut out = Vec::new();
    for i in items {
        match i {
            Item::Part(p) => part = Some(p.as_str()),
            Item::Chapter { title, path, .. } => out.push((part, title.as_str(), path.as_str())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_and_chapters_are_read_in_order_without_the_summary_title() {
        let items = parse(
            "# Summary\n\n[Intro](README.md)\n\n# English\n\n- [One](en/one.md)\n  - [Sub](en/sub.md)\n# 中文\n- [一](zh/one.md)\n",
        );
        assert_eq!(
            items,
            vec![
                Item::Chapter {
                    title: "Intro".into(),
                    path: "README.md".into(),
                    depth: 0
                },
                Item::Part("English".into()),
                Item::Chapter {
                    title: "One".into(),
                    path: "en/one.md".into(),
                    depth: 0
                },
                Item::Chapter {
                    title: "Sub".into(),
                    path: "en/sub.md".into(),
                    depth: 1
                },
                Item::Part("中文".into()),
                Item::Chapter {
                    title: "一".into(),
                    path: "zh/one.md".into(),
                    depth: 0
                },
            ]
        );
        let c = chapters(&items);
        assert_eq!(c[0], (None, "Intro", "README.md"));
        assert_eq!(c[3], (Some("中文"), "一", "zh/one.md"));
    }
}
