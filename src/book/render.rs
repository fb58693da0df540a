//! Markdown chapters to HTML pages, as mdBook would show them: `.md` links become `.html`,
//! headings get anchor ids, and the book's runnable examples and their expected output are
//! labelled so a reader knows CI runs them.

use pulldown_cmark::{CodeBlockKind, CowStr, Event, Options, Parser, Tag, TagEnd, html};

use super::Lang;

/// The info-string word that marks a shell block CI runs against a real cluster.
pub const RUNNABLE: &str = "runnable";
/// The info-string word that marks the output a runnable block must print.
pub const EXPECT: &str = "expect";

/// Renders one chapter's Markdown to an HTML fragment.
pub fn markdown(text: &str, lang: Lang) -> String {
    let opts = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_FOOTNOTES;
    let mut events: Vec<Event> = Vec::new();
    let mut open_example = Vec::new();
    for ev in Parser::new_ext(text, opts) {
        match ev {
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => events.push(Event::Start(Tag::Link {
                link_type,
                dest_url: md_to_html(dest_url),
                title,
                id,
            })),
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                let (code_lang, marker) = split_info(&info);
                let label = match marker {
                    Some(RUNNABLE) => Some((
                        "runnable",
                        lang.pick("runnable: CI runs it", "可运行：CI 会执行它"),
                    )),
                    Some(EXPECT) => Some(("expect", lang.pick("you should see", "你应当看到"))),
                    _ => None,
                };
                if let Some((class, text)) = label {
                    events.push(Event::Html(
                        format!(
                            "<div class=\"example {class}\"><span class=\"tag\">{text}</span>\n"
                        )
                        .into(),
                    ));
                }
                open_example.push(label.is_some());
                events.push(Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(
                    code_lang.to_string().into(),
                ))));
            }
            Event::End(TagEnd::CodeBlock) => {
                events.push(ev);
                if open_example.pop() == Some(true) {
                    events.push(Event::Html("</div>\n".into()));
                }
            }
            other => events.push(other),
        }
    }
    add_heading_ids(&mut events);
    let mut out = String::with_capacity(text.len() * 2);
    html::push_html(&mut out, events.into_iter());
    out
}

/// `sh,runnable` → ("sh", Some("runnable")); mdBook splits info strings on commas too.
pub fn split_info(info: &str) -> (&str, Option<&str>) {
    let mut words = info.split([',', ' ']).filter(|w| !w.is_empty());
    let lang = words.next().unwrap_or("");
    let marker = words.find(|w| *w == RUNNABLE || *w == EXPECT);
    (lang, marker)
}

/// Relative links to chapters point at their rendered pages, as in mdBook's output.
fn md_to_html(dest: CowStr<'_>) -> CowStr<'_> {
    if dest.contains("://") || dest.starts_with('#') || dest.starts_with("mailto:") {
        return dest;
    }
    let (path, frag) = match dest.split_once('#') {
        Some((p, f)) => (p, Some(f)),
        None => (&*dest, None),
    };
    match path.strip_suffix(".md") {
        Some(stem) => {
            let mut s = format!("{stem}.html");
            if let Some(f) = frag {
                s.push('#');
                s.push_str(f);
            }
            s.into()
        }
        None => dest,
    }
}

/// Gives every heading without an explicit id one made from its text, as mdBook does, so
/// `chapter.md#some-heading` links work in both.
fn add_heading_ids(events: &mut [Event<'_>]) {
    let mut i = 0;
    while i < events.len() {
        if let Event::Start(Tag::Heading { id: None, .. }) = &events[i] {
            let mut text = String::new();
            let mut j = i + 1;
            while j < events.len() && !matches!(events[j], Event::End(TagEnd::Heading(_))) {
                if let Event::Text(t) | Event::Code(t) = &events[j] {
                    text.push_str(t);
                }
                j += 1;
            }
            if let Event::Start(Tag::Heading { id, .. }) = &mut events[i] {
                *id = Some(slug(&text).into());
            }
            i = j;
        }
        i += 1;
    }
}

/// mdBook's heading ids: lower-case, alphanumerics (any script) kept, spaces to '-', the rest
/// dropped.
pub fn slug(text: &str) -> String {
    text.trim()
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                Some(c.to_lowercase().collect::<String>())
            } else if c.is_whitespace() {
                Some("-".into())
            } else {
                None
            }
        })
        .collect()
}

/// HTML-escapes text placed in the page template.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chapter_links_become_html_pages_and_external_links_stay() {
        let html = markdown(
            "[a](02-images.md) [b](02-images.md#layers) [c](https://x.dev/a.md) ![d](../images/x.svg)",
            Lang::En,
        );
        assert!(html.contains("href=\"02-images.html\""), "{html}");
        assert!(html.contains("href=\"02-images.html#layers\""), "{html}");
        assert!(html.contains("href=\"https://x.dev/a.md\""), "{html}");
        assert!(html.contains("src=\"../images/x.svg\""), "{html}");
    }

    #[test]
    fn headings_get_mdbook_style_ids_in_any_script() {
        let html = markdown("## The `KUBE-SVC` chains\n\n## 容器 与 Docker\n", Lang::En);
        assert!(html.contains("<h2 id=\"the-kube-svc-chains\">"), "{html}");
        assert!(html.contains("<h2 id=\"容器-与-docker\">"), "{html}");
    }

    #[test]
    fn runnable_and_expect_blocks_are_labelled_and_keep_their_language_class() {
        let html = markdown(
            "```sh,runnable\nkubectl get nodes\n```\n\n```text,expect\nReady\n```\n",
            Lang::Zh,
        );
        assert!(html.contains("class=\"example runnable\""), "{html}");
        assert!(html.contains("可运行"), "{html}");
        assert!(html.contains("class=\"language-sh\""), "{html}");
        assert!(html.contains("class=\"example expect\""), "{html}");
        assert_eq!(split_info("sh,runnable"), ("sh", Some("runnable")));
        assert_eq!(split_info("text"), ("text", None));
    }
}
