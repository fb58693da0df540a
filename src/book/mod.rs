//! The course book: `book/src` embedded in the binary and rendered to HTML on request, so
//! `kindling book` works offline without mdBook.

pub mod render;
pub mod server;
pub mod summary;

use include_dir::{Dir, include_dir};

use render::escape;
use summary::Item;

/// The book's Markdown sources, images and `SUMMARY.md`, as `mdbook build` reads them.
pub static SOURCE: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/book/src");

/// The languages the book is written in; each has its own folder under `book/src`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Zh,
}

impl Lang {
    /// From `LC_ALL`, `LC_MESSAGES` or `LANG` as gettext reads them (`zh*` is Chinese), the same
    /// rule the labs use.
    pub fn from_env() -> Lang {
        for var in ["LC_ALL", "LC_MESSAGES", "LANG"] {
            if let Ok(v) = std::env::var(var)
                && !v.is_empty()
            {
                return Lang::from_tag(&v);
            }
        }
        Lang::En
    }

    fn from_tag(tag: &str) -> Lang {
        if tag.to_ascii_lowercase().starts_with("zh") {
            Lang::Zh
        } else {
            Lang::En
        }
    }

    /// The folder under `book/src` holding this language's chapters.
    pub fn dir(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    pub fn pick(self, en: &'static str, zh: &'static str) -> &'static str {
        match self {
            Lang::En => en,
            Lang::Zh => zh,
        }
    }

    /// The language of a page, by its folder; pages outside both folders are English.
    fn of_path(path: &str) -> Lang {
        if path.starts_with("zh/") {
            Lang::Zh
        } else {
            Lang::En
        }
    }
}

/// The page a reader of `lang` starts on.
pub fn start_page(lang: Lang) -> String {
    format!("{}/index.html", lang.dir())
}

/// What a request path resolves to.
pub enum Page {
    /// A rendered chapter.
    Html(String),
    /// An embedded file served as it is (images), with its content type.
    File(&'static [u8], &'static str),
}

/// The page at `path` (relative to the book root, e.g. `en/05-services.html` or
/// `images/vxlan.svg`), or `None` when the book has no such page.
pub fn page(path: &str) -> Option<Page> {
    let path = path.trim_start_matches('/');
    if let Some(stem) = path.strip_suffix(".html") {
        let md = format!("{stem}.md");
        let text = SOURCE.get_file(&md)?.contents_utf8()?;
        return Some(Page::Html(chapter_page(&md, text)));
    }
    let file = SOURCE.get_file(path)?;
    let kind = match path.rsplit_once('.').map(|(_, e)| e) {
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("css") => "text/css; charset=utf-8",
        Some("md") | Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    };
    Some(Page::File(file.contents(), kind))
}

fn summary() -> Vec<Item> {
    let text = SOURCE
        .get_file("SUMMARY.md")
        .and_then(|f| f.contents_utf8())
        .unwrap_or("");
    summary::parse(text)
}

/// `depth` levels of `../`, so links from `en/x.html` reach `images/` and `zh/`.
fn root_prefix(md_path: &str) -> String {
    "../".repeat(md_path.matches('/').count())
}

/// A full HTML page: navigation from `SUMMARY.md` (this page's language only), the chapter,
/// previous/next links and a link to the same chapter in the other language.
fn chapter_page(md_path: &str, text: &str) -> String {
    let lang = Lang::of_path(md_path);
    let items = summary();
    let root = root_prefix(md_path);
    let chapters = summary::chapters(&items);
    let pos = chapters.iter().position(|(_, _, p)| *p == md_path);
    let this_part = pos.and_then(|i| chapters[i].0);
    let title = pos.map(|i| chapters[i].1).unwrap_or("Kindling");

    let mut nav = String::new();
    let mut part: Option<&str> = None;
    for item in &items {
        match item {
            Item::Part(p) => {
                part = Some(p);
                if part == this_part {
                    nav.push_str(&format!("<li class=\"part\">{}</li>\n", escape(p)));
                }
            }
            Item::Chapter { title, path, depth } => {
                if part != this_part && part.is_some() {
                    continue;
                }
                let href = format!("{root}{}", path.replace(".md", ".html"));
                let class = if path == md_path {
                    " class=\"active\""
                } else {
                    ""
                };
                nav.push_str(&format!(
                    "<li style=\"margin-left:{}em\"><a{class} href=\"{}\">{}</a></li>\n",
                    depth,
                    escape(&href),
                    escape(title)
                ));
            }
        }
    }

    let mut pager = String::new();
    if let Some(i) = pos {
        let same_part = |j: usize| chapters[j].0 == this_part;
        if i > 0 && same_part(i - 1) {
            let (_, t, p) = chapters[i - 1];
            pager.push_str(&format!(
                "<a class=\"prev\" href=\"{root}{}\">← {}</a>",
                escape(&p.replace(".md", ".html")),
                escape(t)
            ));
        }
        if i + 1 < chapters.len() && same_part(i + 1) {
            let (_, t, p) = chapters[i + 1];
            pager.push_str(&format!(
                "<a class=\"next\" href=\"{root}{}\">{} →</a>",
                escape(&p.replace(".md", ".html")),
                escape(t)
            ));
        }
    }

    let other = match lang {
        Lang::En => md_path.strip_prefix("en/").map(|p| ("zh", p, "中文")),
        Lang::Zh => md_path.strip_prefix("zh/").map(|p| ("en", p, "English")),
    };
    let switch = match other {
        Some((dir, rest, label)) if SOURCE.get_file(format!("{dir}/{rest}")).is_some() => format!(
            "<a class=\"lang\" href=\"{root}{dir}/{}\">{label}</a>",
            escape(&rest.replace(".md", ".html"))
        ),
        _ => String::new(),
    };

    let body = render::markdown(text, lang);
    let html_lang = match lang {
        Lang::En => "en",
        Lang::Zh => "zh-CN",
    };
    format!(
        r#"<!DOCTYPE html>
<html lang="{html_lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Kindling</title>
<style>{STYLE}</style>
</head>
<body>
<nav><a class="home" href="{root}README.html">Kindling</a>{switch}<ul>
{nav}</ul></nav>
<main>
{body}
<div class="pager">{pager}</div>
</main>
</body>
</html>
"#,
        title = escape(title),
    )
}

/// One small stylesheet, inline so every page is a single request.
const STYLE: &str = "
body{margin:0;display:flex;font:16px/1.6 system-ui,'Noto Sans CJK SC','PingFang SC',sans-serif;color:#222}
nav{width:17em;min-height:100vh;background:#f5f3ef;padding:1em;box-sizing:border-box;flex-shrink:0}
nav ul{list-style:none;padding:0}nav li{margin:.3em 0}nav li.part{font-weight:bold;margin-top:1em;color:#8a4b08}
nav a{color:#333;text-decoration:none}nav a.active{font-weight:bold;color:#c2410c}
nav a.home{font-weight:bold;font-size:1.2em;color:#c2410c}nav a.lang{float:right;font-size:.9em}
main{max-width:52em;padding:1em 2em 4em;min-width:0}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;border-radius:4px;font-size:.85em;line-height:1.4}
code{font-family:ui-monospace,'DejaVu Sans Mono',monospace}
p code,li code,td code{background:#f3f0ea;padding:0 .2em;border-radius:3px}
.example{position:relative}.example .tag{position:absolute;right:.5em;top:.2em;font-size:.7em;color:#777}
.example.runnable pre{border-left:4px solid #16a34a}.example.expect pre{border-left:4px solid #94a3b8;background:#fbfbfb}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.3em .6em}
img{max-width:100%}blockquote{border-left:4px solid #f59e0b;margin:0;padding:.2em 1em;background:#fffbeb}
.pager{display:flex;justify-content:space-between;margin-top:3em}
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chapter_in_the_summary_renders_with_navigation_in_its_language() {
        for (_, title, path) in summary::chapters(&summary()) {
            let html = match page(&path.replace(".md", ".html")) {
                Some(Page::Html(h)) => h,
                _ => panic!("{path} is in SUMMARY.md but does not render"),
            };
            assert!(html.contains(&escape(title)), "{path}");
            if path.starts_with("zh/") {
                assert!(html.contains("<html lang=\"zh-CN\">"), "{path}");
                assert!(
                    !html.contains("href=\"../en/01-containers.html\">1."),
                    "{path}"
                );
            }
        }
    }

    #[test]
    fn images_are_served_with_their_type_and_unknown_pages_are_none() {
        assert!(page("en/no-such-chapter.html").is_none());
        assert!(page("../Cargo.toml").is_none());
        if let Some(f) = SOURCE.get_dir("images").and_then(|d| d.files().next()) {
            let path = f.path().to_string_lossy().into_owned();
            match page(&path) {
                Some(Page::File(bytes, kind)) => {
                    assert!(!bytes.is_empty());
                    assert_eq!(kind, "image/svg+xml");
                }
                _ => panic!("{path} is not served"),
            }
        }
    }

    #[test]
    fn language_comes_from_the_locale_like_the_labs() {
        assert_eq!(Lang::from_tag("zh_CN.UTF-8"), Lang::Zh);
        assert_eq!(Lang::from_tag("en_US.UTF-8"), Lang::En);
        assert_eq!(Lang::from_tag("C"), Lang::En);
    }
}
