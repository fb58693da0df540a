//! The course book (`book/`): its structure and links, `mdbook build`, `kindling book` serving
//! it, and every runnable example run on the host against a real Kindling cluster, its output
//! compared with what the book says a student will see.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ClusterGuard, cluster_lock, docker_available, in_ci, kindling, require, tools_dir};
use kindling::book::render::{EXPECT, RUNNABLE, slug, split_info};
use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};

fn book_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src")
}

/// Every Markdown file under book/src, relative to it, sorted.
fn markdown_files() -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, root, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(&book_src(), &book_src(), &mut out);
    out.sort();
    out
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(book_src().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The chapters in SUMMARY.md order.
fn summary_chapters() -> Vec<String> {
    let items = kindling::book::summary::parse(&read("SUMMARY.md"));
    kindling::book::summary::chapters(&items)
        .into_iter()
        .map(|(_, _, p)| p.to_string())
        .collect()
}

/// A shell block marked runnable and the output block that follows it.
#[derive(Debug, Clone, PartialEq)]
struct Example {
    file: String,
    line: usize,
    script: String,
    expect: String,
}

/// Fenced code blocks of one file: (info, text, line of the opening fence).
fn code_blocks(text: &str) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String, usize)> = None;
    for (ev, range) in Parser::new(text).into_offset_iter() {
        match ev {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                let line = text[..range.start].lines().count() + 1;
                current = Some((info.to_string(), String::new(), line));
            }
            Event::Text(t) => {
                if let Some(c) = current.as_mut() {
                    c.1.push_str(&t);
                }
            }
            Event::End(TagEnd::CodeBlock) => out.extend(current.take()),
            _ => {}
        }
    }
    out
}

/// The runnable examples of one chapter, each paired with the `expect` block right after it.
fn examples(file: &str) -> Vec<Example> {
    let blocks = code_blocks(&read(file));
    let mut out = Vec::new();
    for (i, (info, script, line)) in blocks.iter().enumerate() {
        if split_info(info).1 != Some(RUNNABLE) {
            continue;
        }
        let expect = blocks
            .get(i + 1)
            .filter(|(info, _, _)| split_info(info).1 == Some(EXPECT))
            .unwrap_or_else(|| {
                panic!(
                    "{file}:{line}: a runnable block needs a ```text,expect block right after it"
                )
            });
        out.push(Example {
            file: file.into(),
            line: *line,
            script: script.clone(),
            expect: expect.1.clone(),
        });
    }
    out
}

fn chapters_of(lang: &str) -> Vec<String> {
    summary_chapters()
        .into_iter()
        .filter(|p| p.starts_with(&format!("{lang}/")))
        .collect()
}

/// Does `output` show `expected`? Every non-empty expected line must match a whole output line
/// (trimmed), in order, with other lines allowed between. Inside a line a run of spaces matches
/// any run of whitespace and `…` matches any text; the rest is literal. The book states this
/// rule where it introduces the examples.
fn shows(output: &str, expected: &str) -> Result<(), String> {
    let mut lines = output.lines().map(str::trim);
    for want in expected.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let re = line_pattern(want);
        if !lines.by_ref().any(|l| re.is_match(l)) {
            return Err(format!("no output line (in order) matches `{want}`"));
        }
    }
    Ok(())
}

fn line_pattern(want: &str) -> regex::Regex {
    let gaps = regex::Regex::new(" +").unwrap();
    let parts: Vec<String> = want
        .split('…')
        .map(|part| gaps.replace_all(&regex::escape(part), r"\s+").into_owned())
        .collect();
    regex::Regex::new(&format!("^{}$", parts.join(".*?"))).unwrap()
}

#[test]
fn the_output_rule_allows_gaps_elisions_and_other_lines_but_not_wrong_values() {
    let out = "NAME     STATUS   AGE\nweb-1    Running  3s\nweb-2    Pending  1s\n";
    assert!(shows(out, "NAME STATUS AGE\nweb-… Running …\n").is_ok());
    assert!(shows(out, "web-2    Pending  …").is_ok());
    assert!(shows(out, "web-1 Pending …").is_err());
    assert!(
        shows(out, "web-2 Pending …\nweb-1 Running …").is_err(),
        "order counts"
    );
    assert!(shows(out, "eb-1 Running 3s").is_err(), "whole lines only");
    assert!(
        shows("Name:\tweb.default", "Name:  web.default").is_ok(),
        "tabs are gaps"
    );
    assert!(shows("a  b", "a b").is_ok() && shows("ab", "a b").is_err());
}

#[test]
fn every_markdown_file_is_in_the_summary_and_every_summary_entry_exists() {
    let listed: BTreeSet<String> = summary_chapters().into_iter().collect();
    let files: BTreeSet<String> = markdown_files()
        .into_iter()
        .filter(|f| f != "SUMMARY.md")
        .collect();
    assert_eq!(listed, files, "SUMMARY.md and the files in book/src differ");
    assert!(
        chapters_of("en").len() >= 7,
        "an introduction and six chapters"
    );
}

#[test]
fn english_and_chinese_have_the_same_chapters_images_and_examples() {
    let en = chapters_of("en");
    let zh: Vec<String> = chapters_of("zh");
    let strip = |v: &[String], l: &str| -> Vec<String> {
        v.iter()
            .map(|p| p.trim_start_matches(l).to_string())
            .collect()
    };
    assert_eq!(strip(&en, "en/"), strip(&zh, "zh/"));
    let images = |p: &str| -> Vec<String> {
        Parser::new(&read(p))
            .filter_map(|e| match e {
                Event::Start(Tag::Image { dest_url, .. }) => Some(dest_url.to_string()),
                _ => None,
            })
            .collect()
    };
    for (e, z) in en.iter().zip(&zh) {
        assert_eq!(images(e), images(z), "{e} and {z} show different images");
        let strip_loc = |v: Vec<Example>| -> Vec<(String, String)> {
            v.into_iter().map(|x| (x.script, x.expect)).collect()
        };
        assert_eq!(
            strip_loc(examples(e)),
            strip_loc(examples(z)),
            "{e} and {z} must carry the same runnable examples (CI runs the English ones)"
        );
        // Real Chinese, not an English copy: most prose characters are CJK.
        let cjk = read(z)
            .chars()
            .filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c))
            .count();
        assert!(
            cjk > 200 || z.ends_with("index.md") && cjk > 50,
            "{z} has little Chinese text"
        );
    }
}

/// Heading ids of a chapter, as both mdBook and `kindling book` make them.
fn anchors(rel: &str) -> BTreeSet<String> {
    let text = read(rel);
    let mut out = BTreeSet::new();
    let mut heading: Option<String> = None;
    for ev in Parser::new(&text) {
        match ev {
            Event::Start(Tag::Heading { id, .. }) => {
                if let Some(id) = id {
                    out.insert(id.to_string());
                }
                heading = Some(String::new());
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => out.extend(heading.take().map(|h| slug(&h))),
            _ => {}
        }
    }
    out
}

/// Resolves `a/b/../c` without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[test]
fn every_relative_link_and_image_in_the_book_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let text = read(&file);
        let dir = Path::new(&file).parent().unwrap().to_path_buf();
        for ev in Parser::new(&text) {
            let (dest, is_image) = match ev {
                Event::Start(Tag::Link { dest_url, .. }) => (dest_url, false),
                Event::Start(Tag::Image { dest_url, .. }) => (dest_url, true),
                _ => continue,
            };
            if dest.contains("://") || dest.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, frag) = match dest.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (&*dest, None),
            };
            let target = if path.is_empty() {
                PathBuf::from(&file)
            } else {
                normalize(&dir.join(path))
            };
            let rel = target.to_string_lossy().into_owned();
            if !book_src().join(&target).is_file() {
                broken.push(format!("{file}: {dest} (no file {rel})"));
                continue;
            }
            if is_image && !rel.starts_with("images/") {
                broken.push(format!("{file}: {dest} (images live in book/src/images)"));
            }
            if let Some(f) = frag
                && rel.ends_with(".md")
                && !anchors(&rel).contains(f)
            {
                broken.push(format!("{file}: {dest} (no heading #{f} in {rel})"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(checked > 20, "only {checked} links checked");
}

#[test]
fn every_image_is_a_well_formed_svg_that_some_chapter_shows() {
    let dir = book_src().join("images");
    let all_text: String = markdown_files().iter().map(|f| read(f)).collect();
    let mut count = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.ends_with(".svg"),
            "{name}: the book's diagrams are SVG"
        );
        let svg = std::fs::read_to_string(&p).unwrap();
        assert!(
            svg.contains("xmlns=\"http://www.w3.org/2000/svg\""),
            "{name}: no SVG namespace"
        );
        assert!(
            svg.contains("viewBox="),
            "{name}: no viewBox (it would not scale)"
        );
        if let Err(e) = balanced_tags(&svg) {
            panic!("{name}: {e}");
        }
        assert!(
            all_text.contains(&format!("images/{name}")),
            "{name} is not shown anywhere"
        );
        count += 1;
    }
    assert!(count >= 6, "at least one diagram per chapter");
}

/// Browsers refuse an `<img>` whose SVG is not well-formed XML: tags must nest.
fn balanced_tags(svg: &str) -> Result<(), String> {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        let end = rest.find('>').ok_or("a tag is not closed")?;
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().ok_or(format!("</{name}> closes nothing"))?;
            if open != name.trim() {
                return Err(format!("<{open}> closed by </{name}>"));
            }
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().unwrap_or("").to_string();
            stack.push(name);
        }
    }
    match stack.is_empty() {
        true => Ok(()),
        false => Err(format!("unclosed tags: {stack:?}")),
    }
}

#[test]
fn every_lab_the_book_names_is_a_bundled_lab() {
    let labs = Path::new(env!("CARGO_MANIFEST_DIR")).join("labs");
    let mut ids = BTreeSet::new();
    for track in std::fs::read_dir(&labs).unwrap().flatten() {
        if !track.path().is_dir() {
            continue;
        }
        for lab in std::fs::read_dir(track.path()).unwrap().flatten() {
            if let Ok(y) = std::fs::read_to_string(lab.path().join("lab.yaml"))
                && let Some(id) = y.lines().find_map(|l| l.strip_prefix("id: "))
            {
                ids.insert(id.trim().to_string());
            }
        }
    }
    let re = regex::Regex::new(r"kindling lab start ([a-z0-9-]+)").unwrap();
    let mut named: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in markdown_files() {
        for c in re.captures_iter(&read(&f)) {
            named.entry(c[1].to_string()).or_default().push(f.clone());
        }
    }
    let missing: Vec<_> = named.iter().filter(|(id, _)| !ids.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "the book names labs that do not exist: {missing:?}"
    );
    assert!(named.len() >= 4, "the chapters link to their labs");
}

/// mdBook itself, installed by scripts/fetch-book-tools.sh into target/tools/mdbook.
fn mdbook() -> Option<PathBuf> {
    let p = tools_dir().join("mdbook/bin/mdbook");
    p.is_file().then_some(p)
}

#[test]
fn mdbook_builds_the_book() {
    let Some(mdbook) = mdbook() else {
        require(
            "mdbook in target/tools/mdbook (scripts/fetch-book-tools.sh)",
            false,
        );
        return;
    };
    let out_dir = std::env::temp_dir().join(format!("kindling-book-{}", std::process::id()));
    let book = Path::new(env!("CARGO_MANIFEST_DIR")).join("book");
    let r = common::run(
        Command::new(mdbook)
            .arg("build")
            .arg(&book)
            .arg("-d")
            .arg(&out_dir),
    )
    .ok("mdbook build");
    assert!(!r.stderr.contains("WARN"), "mdbook warned:\n{}", r.stderr);
    for page in ["en/05-services.html", "zh/06-flannel.html", "images"] {
        assert!(out_dir.join(page).exists(), "mdbook did not write {page}");
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// `kindling book` as a child process, killed on drop.
struct Served {
    child: Child,
    addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(args: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kindling"))
        .arg("book")
        .args(["--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("kindling book starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    Served { child, addr }
}

/// (status line, headers, body) of a GET.
fn get(addr: &str, path: &str) -> (String, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let (status, headers) = head.split_once("\r\n").unwrap_or((&head, ""));
    (
        status.into(),
        headers.to_lowercase(),
        raw[split + 4..].to_vec(),
    )
}

#[test]
fn kindling_book_serves_chapters_with_navigation_and_their_images() {
    let served = serve(&["--lang", "zh"]);
    let (status, headers, _) = get(&served.addr, "/");
    assert!(status.contains("302"), "{status}");
    assert!(headers.contains("location: /zh/index.html"), "{headers}");

    let (status, headers, body) = get(&served.addr, "/en/05-services.html");
    assert!(status.contains("200"), "{status}");
    assert!(headers.contains("text/html"), "{headers}");
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("<h1"), "no heading:\n{html}");
    assert!(html.contains("KUBE-SVC-"), "the chapter text is missing");
    assert!(
        html.contains("href=\"../en/06-flannel.html\""),
        "no navigation"
    );
    assert!(
        html.contains("href=\"../zh/05-services.html\""),
        "no link to the Chinese page"
    );
    let img = regex::Regex::new(r#"<img src="(\.\./images/[^"]+\.svg)""#).unwrap();
    let src = img.captures(&html).expect("the chapter shows a diagram")[1].to_string();
    // The page is /en/05-services.html, so ../images/x.svg is /images/x.svg.
    let path = format!("/{}", src.trim_start_matches("../"));
    let (status, headers, body) = get(&served.addr, &path);
    assert!(status.contains("200"), "{src}: {status}");
    assert!(headers.contains("content-type: image/svg+xml"), "{headers}");
    assert!(String::from_utf8_lossy(&body).contains("<svg"));

    let (_, _, body) = get(&served.addr, "/zh/06-flannel.html");
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("<html lang=\"zh-CN\">") && html.contains("flannel.1"));

    let (status, _, _) = get(&served.addr, "/en/no-such-page.html");
    assert!(status.contains("404"), "{status}");
}

/// Removes what the examples make outside the cluster: containers named `demo-*` and images
/// named `demo/*` (the book uses those names so that nothing else on the machine is touched).
fn remove_example_leftovers() {
    for id in common::docker(&["ps", "-aq", "--filter", "name=^demo-"])
        .stdout
        .split_whitespace()
    {
        common::docker(&["rm", "-f", id]);
    }
    let images = common::docker(&["images", "-q", "--filter", "reference=demo/*"]).stdout;
    for id in images.split_whitespace().collect::<BTreeSet<_>>() {
        common::docker(&["rmi", "-f", id]);
    }
}

/// Runs `remove_example_leftovers` when dropped, so a failed run leaves nothing behind.
struct Leftovers;

impl Drop for Leftovers {
    fn drop(&mut self) {
        remove_example_leftovers();
    }
}

/// The cluster the examples use. The book's examples name node containers, so the cluster
/// must have the name a student's first cluster gets.
const CLUSTER: &str = "kindling";

#[test]
fn runnable_examples_print_what_the_book_says_on_a_real_cluster() {
    if !docker_available() || !require("kubectl in target/tools", common::kubectl_path().is_some())
    {
        return;
    }
    let examples: Vec<Example> = chapters_of("en").iter().flat_map(|c| examples(c)).collect();
    assert!(
        (15..=30).contains(&examples.len()),
        "{} runnable examples: keep them between 15 and 30",
        examples.len()
    );
    let _lock = cluster_lock();
    let existing = kindling(&["get", "clusters"]).stdout;
    assert!(
        !existing.lines().any(|l| l.trim() == CLUSTER),
        "a cluster named {CLUSTER:?} exists already; the book's examples create their own with that name (delete yours, or run elsewhere)"
    );
    remove_example_leftovers();
    let _leftovers = Leftovers;
    let (kubeconfig, _guard) = ClusterGuard::new(CLUSTER);
    let work = kubeconfig.parent().unwrap().to_path_buf();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_kindling")).parent().unwrap();
    let path = format!(
        "{}:{}:{}",
        tools_dir().display(),
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    // On a fresh machine the first example would spend minutes bootstrapping the Debian base
    // and building the images; do that once, untimed, as a reader's first `kindling` run would.
    kindling(&["build", "images"]).ok("kindling build images");

    let started = Instant::now();
    let mut failures = Vec::new();
    for ex in &examples {
        let t = Instant::now();
        let out = Command::new("timeout")
            // Generous: the cluster example may build the node image first.
            .args(["300", "sh", "-c"])
            .arg(format!("exec 2>&1\n{}", ex.script))
            .current_dir(&work)
            .env("KUBECONFIG", &kubeconfig)
            .env("PATH", &path)
            .stdin(Stdio::null())
            .output()
            .expect("sh runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let verdict = if !out.status.success() {
            Err(format!("exit status {}", out.status))
        } else {
            shows(&text, &ex.expect)
        };
        eprintln!(
            "{} {}:{} ({:.1}s)",
            if verdict.is_ok() { "✓" } else { "✗" },
            ex.file,
            ex.line,
            t.elapsed().as_secs_f64()
        );
        if let Err(why) = verdict {
            failures.push(format!(
                "{}:{}: {why}\n--- script\n{}--- output\n{text}--- expected\n{}",
                ex.file, ex.line, ex.script, ex.expect
            ));
            // Later examples build on earlier ones; one failure is enough to read.
            if in_ci() || failures.len() >= 3 {
                break;
            }
        }
    }
    eprintln!(
        "{} runnable examples in {:.1}s",
        examples.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
