//! Step text: Markdown (headings, lists, emphasis, inline code, fenced code blocks) turned
//! into ratatui lines already wrapped to a width, so scrolling knows the real line count and
//! list items keep their hanging indent.

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Parser, Tag, TagEnd};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthStr;

use crate::theme::Theme;

/// One block of text before wrapping: its prefixes and styled fragments.
struct Block {
    first: String,
    rest: String,
    spans: Vec<(String, Style)>,
}

struct Renderer<'t> {
    theme: &'t Theme,
    width: usize,
    out: Vec<Line<'static>>,
    block: Option<Block>,
    /// Bold/italic/code nesting.
    style: Style,
    heading: bool,
    /// Per open list: the next number for ordered lists.
    lists: Vec<Option<u64>>,
    /// The marker of a list item whose first line is not written yet.
    item_prefix: Option<(String, String)>,
    quote: usize,
    code: Option<String>,
}

/// Render `md` to lines at most `width` columns wide.
pub fn render(md: &str, width: u16, theme: &Theme) -> Vec<Line<'static>> {
    let mut r = Renderer {
        theme,
        width: usize::from(width.max(8)),
        out: Vec::new(),
        block: None,
        style: Style::new(),
        heading: false,
        lists: Vec::new(),
        item_prefix: None,
        quote: 0,
        code: None,
    };
    for ev in Parser::new(md) {
        r.event(ev);
    }
    r.flush();
    while r.out.last().is_some_and(|l| l.width() == 0) {
        r.out.pop();
    }
    r.out
}

impl Renderer<'_> {
    fn indent(&self) -> String {
        let mut s = "▎ ".repeat(self.quote);
        s.push_str(&"   ".repeat(self.lists.len().saturating_sub(1)));
        s
    }

    fn blank(&mut self) {
        if self.out.last().is_some_and(|l| l.width() > 0) {
            self.out.push(Line::default());
        }
    }

    fn begin(&mut self) {
        if self.block.is_some() {
            return;
        }
        let (first, rest) = match self.item_prefix.take() {
            Some(p) => p,
            None => {
                let base = if self.lists.is_empty() {
                    self.indent()
                } else {
                    format!("{}   ", self.indent())
                };
                (base.clone(), base)
            }
        };
        self.block = Some(Block {
            first,
            rest,
            spans: Vec::new(),
        });
    }

    fn push(&mut self, text: &str, style: Style) {
        self.begin();
        if let Some(b) = &mut self.block {
            b.spans.push((text.to_string(), style));
        }
    }

    fn flush(&mut self) {
        if let Some(b) = self.block.take() {
            let lines = wrap(&b, self.width);
            self.out.extend(lines);
        }
    }

    fn event(&mut self, ev: Event<'_>) {
        match ev {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(t) => {
                if let Some(code) = &mut self.code {
                    code.push_str(&t);
                } else {
                    let style = if self.heading {
                        self.theme.heading().patch(self.style)
                    } else {
                        self.style
                    };
                    self.push(&t, style);
                }
            }
            Event::Code(t) => {
                let style = self.theme.code().patch(self.style);
                self.push(&t, style);
            }
            Event::SoftBreak => self.push(" ", self.style),
            Event::HardBreak => {
                let rest = self.block.as_ref().map(|b| b.rest.clone());
                self.flush();
                if let Some(rest) = rest {
                    self.item_prefix = Some((rest.clone(), rest));
                }
            }
            Event::Rule => {
                self.flush();
                self.blank();
                let w = self.width.min(40);
                self.out.push(Line::from("─".repeat(w)));
                self.out.push(Line::default());
            }
            Event::Html(t) | Event::InlineHtml(t) => self.push(&t, self.style),
            Event::TaskListMarker(done) => {
                self.push(if done { "[x] " } else { "[ ] " }, self.style)
            }
            Event::FootnoteReference(_) | Event::InlineMath(_) | Event::DisplayMath(_) => {}
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Heading { level, .. } => {
                self.flush();
                self.blank();
                self.heading = true;
                if level != HeadingLevel::H1 {
                    // Sub-headings read as headings without shouting: bold only.
                    self.style = self.style.add_modifier(Modifier::BOLD);
                    self.heading = false;
                }
            }
            // A paragraph inside a list item starts on the item's marker line.
            Tag::Paragraph if self.item_prefix.is_none() => self.flush(),
            Tag::List(start) => {
                self.flush();
                if self.lists.is_empty() {
                    self.blank();
                }
                self.item_prefix = None;
                self.lists.push(start);
            }
            Tag::Item => {
                self.flush();
                let indent = self.indent();
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let m = format!("{n}. ");
                        *n += 1;
                        m
                    }
                    _ => "• ".to_string(),
                };
                let rest = format!("{indent}{}", " ".repeat(marker.width()));
                self.item_prefix = Some((format!("{indent}{marker}"), rest));
            }
            Tag::CodeBlock(kind) => {
                self.flush();
                self.blank();
                let _lang = match kind {
                    CodeBlockKind::Fenced(l) => l.to_string(),
                    CodeBlockKind::Indented => String::new(),
                };
                self.code = Some(String::new());
            }
            Tag::Emphasis => self.style = self.style.add_modifier(Modifier::ITALIC),
            Tag::Strong => self.style = self.style.add_modifier(Modifier::BOLD),
            Tag::Strikethrough => self.style = self.style.add_modifier(Modifier::CROSSED_OUT),
            Tag::Link { .. } => self.style = self.style.add_modifier(Modifier::UNDERLINED),
            Tag::BlockQuote(_) => {
                self.flush();
                self.quote += 1;
            }
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Heading(_) => {
                self.flush();
                self.heading = false;
                self.style = Style::new();
                self.out.push(Line::default());
            }
            TagEnd::Paragraph => {
                self.flush();
                if self.lists.is_empty() {
                    self.out.push(Line::default());
                }
            }
            TagEnd::Item => self.flush(),
            TagEnd::List(_) => {
                self.flush();
                self.lists.pop();
                if self.lists.is_empty() {
                    self.blank();
                }
            }
            TagEnd::CodeBlock => {
                let code = self.code.take().unwrap_or_default();
                let prefix = format!("{}  │ ", self.indent());
                let avail = self.width.saturating_sub(prefix.width()).max(4);
                for line in code.trim_end_matches('\n').lines() {
                    // Code is not re-flowed: long lines continue on the next row.
                    for chunk in split_width(line, avail) {
                        self.out.push(Line::from(vec![
                            Span::styled(prefix.clone(), self.theme.dim()),
                            Span::styled(chunk, self.theme.code()),
                        ]));
                    }
                }
                self.out.push(Line::default());
            }
            TagEnd::Emphasis => self.style = self.style.remove_modifier(Modifier::ITALIC),
            TagEnd::Strong => self.style = self.style.remove_modifier(Modifier::BOLD),
            TagEnd::Strikethrough => self.style = self.style.remove_modifier(Modifier::CROSSED_OUT),
            TagEnd::Link => self.style = self.style.remove_modifier(Modifier::UNDERLINED),
            TagEnd::BlockQuote(_) => {
                self.flush();
                self.quote = self.quote.saturating_sub(1);
                self.blank();
            }
            _ => {}
        }
    }
}

/// Split `s` into pieces of at most `width` columns (for code and words longer than a line).
fn split_width(s: &str, width: usize) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut w = 0;
    for c in s.chars() {
        let cw = c.to_string().width();
        if w + cw > width && w > 0 {
            out.push(String::new());
            w = 0;
        }
        out.last_mut().expect("one piece").push(c);
        w += cw;
    }
    out
}

/// Tokens for wrapping: runs of spaces, words, and each wide (CJK) character on its own,
/// since Chinese text breaks between any two characters.
fn tokens(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut kind = 0u8; // 0 none, 1 space, 2 word
    for (i, c) in s.char_indices() {
        let k = if c.is_whitespace() {
            1
        } else if c.to_string().width() > 1 {
            3
        } else {
            2
        };
        if i > start && (k != kind || k == 3) {
            out.push(&s[start..i]);
            start = i;
        }
        kind = k;
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// Append to the line, joining runs of one style into one span (fewer spans draw faster).
fn push_span(cur: &mut Vec<Span<'static>>, text: &str, style: Style) {
    if let Some(last) = cur.last_mut()
        && last.style == style
    {
        last.content.to_mut().push_str(text);
    } else {
        cur.push(Span::styled(text.to_string(), style));
    }
}

/// Drop the space that ended a line.
fn trim_end(cur: &mut Vec<Span<'static>>) {
    if let Some(last) = cur.last_mut() {
        let t = last.content.trim_end_matches(' ').len();
        last.content.to_mut().truncate(t);
    }
}

fn wrap(b: &Block, width: usize) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let mut cur: Vec<Span<'static>> = vec![Span::raw(b.first.clone())];
    let mut used = b.first.width();
    let mut empty = true;
    let rest_w = b.rest.width();
    let new_line = |cur: &mut Vec<Span<'static>>, lines: &mut Vec<Line<'static>>| {
        trim_end(cur);
        lines.push(Line::from(std::mem::take(cur)));
        cur.push(Span::raw(b.rest.clone()));
    };
    for (text, style) in &b.spans {
        for tok in tokens(text) {
            if tok.chars().all(char::is_whitespace) {
                if !empty && used < width {
                    push_span(&mut cur, " ", *style);
                    used += 1;
                }
                continue;
            }
            let tw = tok.width();
            if used + tw > width && !empty {
                new_line(&mut cur, &mut lines);
                used = rest_w;
            }
            if used + tw > width {
                for piece in split_width(tok, width.saturating_sub(used).max(1)) {
                    if used + piece.width() > width && used > rest_w {
                        new_line(&mut cur, &mut lines);
                        used = rest_w;
                    }
                    used += piece.width();
                    push_span(&mut cur, &piece, *style);
                }
            } else {
                push_span(&mut cur, tok, *style);
                used += tw;
            }
            empty = false;
        }
    }
    if !empty {
        trim_end(&mut cur);
        lines.push(Line::from(cur));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(lines: &[Line<'_>]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    const THEME: Theme = Theme { color: false };

    #[test]
    fn headings_paragraphs_and_lists_keep_their_shape() {
        let md = "# Title\n\nSome *text* here.\n\n- one\n- two\n\n1. first\n2. second\n";
        let out = render(md, 40, &THEME);
        assert_eq!(
            text(&out),
            [
                "Title",
                "",
                "Some text here.",
                "",
                "• one",
                "• two",
                "",
                "1. first",
                "2. second"
            ]
        );
        let title = out[0].spans.iter().find(|s| s.content == "Title").unwrap();
        assert!(title.style.add_modifier.contains(Modifier::BOLD));
        let em = out[2].spans.iter().find(|s| s.content == "text").unwrap();
        assert!(em.style.add_modifier.contains(Modifier::ITALIC));
    }

    #[test]
    fn long_lines_wrap_at_words_with_a_hanging_indent_in_lists() {
        let md = "- alpha beta gamma delta epsilon\n";
        let out = render(md, 16, &THEME);
        assert_eq!(text(&out), ["• alpha beta", "  gamma delta", "  epsilon"]);
        assert!(out.iter().all(|l| l.width() <= 16));
    }

    #[test]
    fn code_blocks_are_kept_verbatim_and_marked() {
        let md = "Run:\n\n```sh\ndocker ps -a\n  indented\n```\n";
        let out = render(md, 40, &THEME);
        assert_eq!(
            text(&out),
            ["Run:", "", "  │ docker ps -a", "  │   indented"]
        );
        assert!(out[2].spans[1].style.add_modifier.contains(Modifier::BOLD));
    }

    #[test]
    fn inline_code_stands_apart_without_color() {
        let out = render("Use `docker ps` now.", 40, &THEME);
        let code = out[0]
            .spans
            .iter()
            .find(|s| s.content == "docker ps")
            .unwrap();
        assert!(code.style.add_modifier.contains(Modifier::BOLD));
        assert_eq!(code.style.fg, None);
    }

    #[test]
    fn chinese_text_breaks_between_characters() {
        let out = render("在后台启动容器，列出它们，阅读它们的日志", 12, &THEME);
        assert!(out.len() > 1);
        assert!(out.iter().all(|l| l.width() <= 12), "{:?}", text(&out));
        assert_eq!(
            text(&out).concat(),
            "在后台启动容器，列出它们，阅读它们的日志"
        );
    }
}
