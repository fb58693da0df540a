//! The class report: a folder of result files verified against the class key, checked against
//! a roster, and turned into grades.csv and a self-contained report.html. A result that is
//! tampered, unsigned, signed with another key, a duplicate or for an unknown student is
//! flagged and listed, never silently counted.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::format::xml_escape;
use super::sign::{self, Key, Verdict};
use super::{Error, FORMAT, GradeResult, Result};

/// The class list: student ids in the teacher's order, with names when the CSV has them.
#[derive(Debug, Clone, Default)]
pub struct Roster {
    pub students: Vec<(String, String)>,
}

impl Roster {
    /// A CSV with a header row; the id column is `id`, `student`, `student_id` or `sid`
    /// (else the first column), and a `name` column is used when present.
    pub fn parse(file: &str, text: &str) -> Result<Roster> {
        let mut rows = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(parse_csv_line);
        let Some(header) = rows.next() else {
            return Err(Error::Invalid(vec![format!(
                "{file}: the roster is empty; give a header row (id,name) and a row per student"
            )]));
        };
        let lower: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
        let id_col = lower
            .iter()
            .position(|h| matches!(h.as_str(), "id" | "student" | "student_id" | "sid"))
            .unwrap_or(0);
        let name_col = lower.iter().position(|h| h == "name");
        let mut students = Vec::new();
        let mut seen = BTreeSet::new();
        let mut problems = Vec::new();
        for (i, row) in rows.enumerate() {
            let id = row.get(id_col).map(|s| s.trim()).unwrap_or_default();
            if id.is_empty() {
                continue;
            }
            if let Err(e) = super::validate_student(id) {
                problems.push(format!("{file}:{}: {e}", i + 2));
                continue;
            }
            if !seen.insert(id.to_string()) {
                problems.push(format!(
                    "{file}:{}: student {id:?} is listed twice; keep one row",
                    i + 2
                ));
                continue;
            }
            let name = name_col
                .and_then(|c| row.get(c))
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            students.push((id.to_string(), name));
        }
        if problems.is_empty() {
            Ok(Roster { students })
        } else {
            Err(Error::Invalid(problems))
        }
    }

    pub fn load(path: &Path) -> Result<Roster> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            what: "roster",
            path: path.to_path_buf(),
            source,
        })?;
        Roster::parse(&path.display().to_string(), &text)
    }

    fn contains(&self, id: &str) -> bool {
        self.students.iter().any(|(s, _)| s == id)
    }
}

/// One CSV line, with RFC 4180 quoting ("a, b" and "" inside quotes).
fn parse_csv_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn csv_field(s: &str) -> String {
    // A leading = + - @ would be run as a formula by spreadsheet programs.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// A result file that is not counted, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Flagged {
    pub file: String,
    pub student: Option<String>,
    pub lab: Option<String>,
    pub reason: String,
}

/// A lab as a column of the report.
#[derive(Debug, Clone)]
pub struct LabColumn {
    pub id: String,
    pub title: String,
    pub max_score: u32,
}

#[derive(Debug, Clone)]
pub struct ClassReport {
    pub labs: Vec<LabColumn>,
    /// Rows: (id, name), roster order, else sorted ids.
    pub students: Vec<(String, String)>,
    /// Counted results by (student, lab), with the file each came from.
    pub counted: BTreeMap<(String, String), (String, GradeResult)>,
    pub flagged: Vec<Flagged>,
    /// False when no key was given: nothing was verified, and the report says so.
    pub verified: bool,
    pub files: usize,
}

/// Every `.json` file under `dir` (one level of subfolders too, for per-student folders).
fn result_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let read = |d: &Path| {
        std::fs::read_dir(d).map_err(|source| Error::Read {
            what: "results folder",
            path: d.to_path_buf(),
            source,
        })
    };
    let mut out = Vec::new();
    for e in read(dir)?.flatten() {
        let p = e.path();
        if p.is_dir() {
            for e in read(&p)?.flatten() {
                if e.path().extension().is_some_and(|x| x == "json") {
                    out.push(e.path());
                }
            }
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

impl ClassReport {
    pub fn build(dir: &Path, roster: Option<&Roster>, key: Option<&Key>) -> Result<ClassReport> {
        let files = result_files(dir)?;
        let mut flagged = Vec::new();
        let mut valid: Vec<(String, GradeResult, String)> = Vec::new();
        for path in &files {
            let name = path.strip_prefix(dir).unwrap_or(path).display().to_string();
            let flag = |reason: String, r: Option<&GradeResult>| Flagged {
                file: name.clone(),
                student: r.map(|r| r.student.clone()),
                lab: r.map(|r| r.lab.id.clone()),
                reason,
            };
            let bytes = std::fs::read(path).map_err(|source| Error::Read {
                what: "result",
                path: path.clone(),
                source,
            })?;
            let value: Value = match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(e) => {
                    flagged.push(flag(format!("not JSON: {e}"), None));
                    continue;
                }
            };
            if value.get("format").and_then(Value::as_str) != Some(FORMAT) {
                flagged.push(flag(
                    format!("not a kindling result (no \"format\": {FORMAT:?})"),
                    None,
                ));
                continue;
            }
            let result: GradeResult = match serde_json::from_value(value.clone()) {
                Ok(r) => r,
                Err(e) => {
                    flagged.push(flag(format!("damaged result: {e}"), None));
                    continue;
                }
            };
            if let Some(key) = key {
                let why = match sign::verify(&value, key) {
                    Verdict::Valid => None,
                    Verdict::Unsigned => {
                        Some("unsigned: grade with --key-file so results can be trusted".into())
                    }
                    Verdict::Tampered => Some(
                        "tampered: the content no longer matches its signature (edited after grading)"
                            .to_string(),
                    ),
                    Verdict::OtherKey(id) => Some(format!(
                        "signed with another key (key id {id}, the class key is {})",
                        key.id()
                    )),
                    Verdict::Malformed(m) => Some(format!("bad signature: {m}")),
                };
                if let Some(why) = why {
                    flagged.push(flag(why, Some(&result)));
                    continue;
                }
            }
            // Scores are recomputed from the checks, so a result cannot claim more than its
            // checks earned even when nothing was verified.
            if let Some(why) = inconsistent(&result) {
                flagged.push(flag(why, Some(&result)));
                continue;
            }
            if let Some(r) = roster
                && !r.contains(&result.student)
            {
                flagged.push(flag(
                    format!(
                        "unknown student {:?}: not in the roster; add them to it or find whose result this is",
                        result.student
                    ),
                    Some(&result),
                ));
                continue;
            }
            let digest = value
                .get(sign::SIGNATURE_FIELD)
                .map(sign::canonical)
                .unwrap_or_else(|| sign::canonical(&value));
            valid.push((name, result, digest));
        }

        // Newest first within each (student, lab); the newest counts, the rest are listed.
        valid.sort_by(|a, b| {
            (&a.1.student, &a.1.lab.id, &b.1.graded_at, &a.0).cmp(&(
                &b.1.student,
                &b.1.lab.id,
                &a.1.graded_at,
                &b.0,
            ))
        });
        let mut counted: BTreeMap<(String, String), (String, GradeResult)> = BTreeMap::new();
        let mut digests: BTreeMap<(String, String), String> = BTreeMap::new();
        for (file, r, digest) in valid {
            let k = (r.student.clone(), r.lab.id.clone());
            if let Some((kept, _)) = counted.get(&k) {
                let reason = if digests.get(&k) == Some(&digest) {
                    format!("duplicate: the same result as {kept}, counted once")
                } else {
                    format!(
                        "duplicate: another result for {} in {}; counted the newest, {kept}",
                        r.student, r.lab.id
                    )
                };
                flagged.push(Flagged {
                    file,
                    student: Some(r.student.clone()),
                    lab: Some(r.lab.id.clone()),
                    reason,
                });
                continue;
            }
            digests.insert(k.clone(), digest);
            counted.insert(k, (file, r));
        }
        flagged.sort_by(|a, b| a.file.cmp(&b.file));

        let mut labs: BTreeMap<String, LabColumn> = BTreeMap::new();
        for (_, r) in counted.values() {
            let col = labs.entry(r.lab.id.clone()).or_insert_with(|| LabColumn {
                id: r.lab.id.clone(),
                title: r.lab.title.clone(),
                max_score: 0,
            });
            col.max_score = col.max_score.max(r.max_score);
        }
        let students = match roster {
            Some(r) => r.students.clone(),
            None => {
                let ids: BTreeSet<&String> = counted
                    .keys()
                    .map(|(s, _)| s)
                    .chain(flagged.iter().filter_map(|f| f.student.as_ref()))
                    .collect();
                ids.into_iter()
                    .map(|s| (s.clone(), String::new()))
                    .collect()
            }
        };
        Ok(ClassReport {
            labs: labs.into_values().collect(),
            students,
            counted,
            flagged,
            verified: key.is_some(),
            files: files.len(),
        })
    }

    fn result(&self, student: &str, lab: &str) -> Option<&GradeResult> {
        self.counted
            .get(&(student.to_string(), lab.to_string()))
            .map(|(_, r)| r)
    }

    pub fn total(&self, student: &str) -> u32 {
        self.labs
            .iter()
            .filter_map(|l| self.result(student, &l.id))
            .map(|r| r.score)
            .sum()
    }

    fn flags_of(&self, student: &str) -> Vec<&Flagged> {
        self.flagged
            .iter()
            .filter(|f| f.student.as_deref() == Some(student))
            .collect()
    }

    /// grades.csv: a row per student, a column per lab (points; empty when no counted
    /// result), the total, and the flags that concern the student.
    pub fn csv(&self) -> String {
        let mut out = String::from("student");
        for l in &self.labs {
            out.push(',');
            out.push_str(&csv_field(&l.id));
        }
        out.push_str(",total,flags\n");
        for (id, _) in &self.students {
            out.push_str(&csv_field(id));
            for l in &self.labs {
                out.push(',');
                if let Some(r) = self.result(id, &l.id) {
                    out.push_str(&r.score.to_string());
                }
            }
            let flags: Vec<String> = self
                .flags_of(id)
                .iter()
                .map(|f| format!("{}: {}", f.file, f.reason))
                .collect();
            let _ = writeln!(out, ",{},{}", self.total(id), csv_field(&flags.join("; ")));
        }
        out
    }

    /// Per check of each lab: (lab, step, check id, title, passed, counted).
    pub fn pass_rates(&self) -> Vec<(String, String, String, String, usize, usize)> {
        let mut rates: Vec<(String, String, String, String, usize, usize)> = Vec::new();
        for l in &self.labs {
            let results: Vec<&GradeResult> = self
                .counted
                .values()
                .filter(|(_, r)| r.lab.id == l.id)
                .map(|(_, r)| r)
                .collect();
            for r in &results {
                for s in &r.steps {
                    for c in &s.checks {
                        match rates
                            .iter_mut()
                            .find(|x| x.0 == l.id && x.1 == s.id && x.2 == c.id)
                        {
                            Some(x) => {
                                x.4 += usize::from(c.passed);
                                x.5 += 1;
                            }
                            None => rates.push((
                                l.id.clone(),
                                s.id.clone(),
                                c.id.clone(),
                                c.title.clone(),
                                usize::from(c.passed),
                                1,
                            )),
                        }
                    }
                }
            }
        }
        rates
    }

    /// The whole report as one HTML file: inline CSS and SVG, no scripts, nothing fetched.
    pub fn html(&self) -> String {
        let e = xml_escape;
        let mut h = String::new();
        h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>Class report</title>\n<style>\n");
        h.push_str("body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}\nh1{font-size:24px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}\ntable{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}\nth{background:#f3f3f3}td.n{text-align:right}.flag{color:#a00}.ok{color:#070}.warn{background:#fff3cd;padding:8px;border:1px solid #e0c060}\nsvg text{font-size:12px;font-family:system-ui,sans-serif}\n</style></head><body>\n");
        let _ = writeln!(
            h,
            "<h1>Class report</h1>\n<p>{} result files: {} counted, {} flagged; {} students, {} labs.</p>",
            self.files,
            self.counted.len(),
            self.flagged.len(),
            self.students.len(),
            self.labs.len()
        );
        if !self.verified {
            h.push_str("<p class=\"warn\">Signatures were <b>not verified</b> (no class key given): edited results cannot be told apart. Run <code>kindling class report --key-file KEY</code>.</p>\n");
        }

        h.push_str("<h2>Grades</h2>\n<table><tr><th>student</th>");
        for l in &self.labs {
            let _ = write!(
                h,
                "<th title=\"{}\">{} (/{})</th>",
                e(&l.title),
                e(&l.id),
                l.max_score
            );
        }
        h.push_str("<th>total</th><th>flags</th></tr>\n");
        for (id, name) in &self.students {
            let _ = write!(h, "<tr><td>{}", e(id));
            if !name.is_empty() {
                let _ = write!(h, " ({})", e(name));
            }
            h.push_str("</td>");
            for l in &self.labs {
                match self.result(id, &l.id) {
                    Some(r) => {
                        let _ = write!(h, "<td class=\"n\">{}</td>", r.score);
                    }
                    None => h.push_str("<td class=\"n\">–</td>"),
                }
            }
            let n = self.flags_of(id).len();
            let _ = writeln!(
                h,
                "<td class=\"n\"><b>{}</b></td><td class=\"{}\">{}</td></tr>",
                self.total(id),
                if n > 0 { "flag" } else { "ok" },
                if n > 0 {
                    format!("{n} flagged")
                } else {
                    String::new()
                }
            );
        }
        h.push_str("</table>\n");

        h.push_str("<h2>Pass rate per check</h2>\n");
        h.push_str(&self.chart());

        h.push_str("<h2>Who is stuck where</h2>\n<p>Per student, the first step of each lab that is not fully passed.</p>\n<table><tr><th>student</th>");
        for l in &self.labs {
            let _ = write!(h, "<th>{}</th>", e(&l.id));
        }
        h.push_str("</tr>\n");
        for (id, _) in &self.students {
            let _ = write!(h, "<tr><td>{}</td>", e(id));
            for l in &self.labs {
                match self.result(id, &l.id) {
                    None => h.push_str("<td>no result</td>"),
                    Some(r) => match r.first_failing_step() {
                        None => h.push_str("<td class=\"ok\">done</td>"),
                        Some(s) => {
                            let _ = write!(
                                h,
                                "<td class=\"flag\">{} <small>({})</small></td>",
                                e(&s.title),
                                e(&s.id)
                            );
                        }
                    },
                }
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n");

        let _ = writeln!(h, "<h2>Flagged results ({})</h2>", self.flagged.len());
        if self.flagged.is_empty() {
            h.push_str("<p class=\"ok\">None.</p>\n");
        } else {
            h.push_str("<table><tr><th>file</th><th>student</th><th>lab</th><th>why it is not counted</th></tr>\n");
            for f in &self.flagged {
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"flag\">{}</td></tr>",
                    e(&f.file),
                    e(f.student.as_deref().unwrap_or("?")),
                    e(f.lab.as_deref().unwrap_or("?")),
                    e(&f.reason)
                );
            }
            h.push_str("</table>\n");
        }
        h.push_str("</body></html>\n");
        h
    }

    /// Horizontal bars, one per check, width in proportion to the share of students passing.
    fn chart(&self) -> String {
        let rates = self.pass_rates();
        if rates.is_empty() {
            return "<p>No counted results.</p>\n".into();
        }
        const ROW: usize = 22;
        const LABEL: usize = 330;
        const BAR: usize = 520;
        let height = rates.len() * ROW + 30;
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" role=\"img\" aria-label=\"pass rate per check\">\n",
            LABEL + BAR + 70
        );
        for (i, (lab, step, check, title, passed, n)) in rates.iter().enumerate() {
            let y = i * ROW + 4;
            let rate = *passed as f64 / (*n).max(1) as f64;
            let w = (rate * BAR as f64).round() as usize;
            let colour = if rate >= 0.8 {
                "#3a9a4a"
            } else if rate >= 0.5 {
                "#e0a030"
            } else {
                "#c84030"
            };
            let _ = writeln!(
                s,
                "<g><title>{}</title><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><rect x=\"{LABEL}\" y=\"{y}\" width=\"{BAR}\" height=\"{}\" fill=\"#eee\"/><rect class=\"bar\" x=\"{LABEL}\" y=\"{y}\" width=\"{w}\" height=\"{}\" fill=\"{colour}\"/><text x=\"{}\" y=\"{}\">{}% ({passed}/{n})</text></g>",
                xml_escape(&format!("{lab} / {step}: {title}")),
                LABEL - 6,
                y + 14,
                xml_escape(&format!("{lab} · {check}")),
                ROW - 6,
                ROW - 6,
                LABEL + BAR + 6,
                y + 14,
                (rate * 100.0).round()
            );
        }
        let axis_y = rates.len() * ROW + 20;
        for pct in [0, 50, 100] {
            let x = LABEL + BAR * pct / 100;
            let _ = writeln!(
                s,
                "<text x=\"{x}\" y=\"{axis_y}\" text-anchor=\"middle\">{pct}%</text>"
            );
        }
        s.push_str("</svg>\n");
        s
    }

    /// Write grades.csv and report.html into `out`.
    pub fn write(&self, out: &Path) -> Result<(PathBuf, PathBuf)> {
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Write { path, source }
        };
        std::fs::create_dir_all(out).map_err(err(out))?;
        let csv = out.join("grades.csv");
        std::fs::write(&csv, self.csv()).map_err(err(&csv))?;
        let html = out.join("report.html");
        std::fs::write(&html, self.html()).map_err(err(&html))?;
        Ok((csv, html))
    }
}

/// A result whose totals do not add up from its checks has been edited (or is broken).
fn inconsistent(r: &GradeResult) -> Option<String> {
    let mut total = 0;
    let mut max = 0;
    for s in &r.steps {
        let earned: u32 = s.checks.iter().map(|c| c.earned).sum();
        let points: u32 = s.checks.iter().map(|c| c.points).sum();
        let bad_check = s
            .checks
            .iter()
            .any(|c| c.earned > c.points || (c.passed != (c.earned == c.points && c.points > 0)));
        if bad_check || earned != s.score || points != s.max_score {
            return Some(format!(
                "inconsistent: step {}'s points do not add up from its checks",
                s.id
            ));
        }
        total += earned;
        max += points;
    }
    if total != r.score || max != r.max_score {
        return Some("inconsistent: the score is not the sum of its steps".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grade::tests::fixture_result;

    fn temp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kindling-report-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn key() -> Key {
        Key::from_bytes(b"the class key for the tests")
    }

    fn write(dir: &Path, name: &str, r: &GradeResult) {
        std::fs::write(dir.join(name), r.to_json()).unwrap();
    }

    #[test]
    fn grades_csv_totals_counted_results_and_flags_the_rest() {
        let dir = temp("csv");
        let k = key();
        let mut ana_a = fixture_result("ana", "lab-a", &[true, true, true, true]); // 8
        ana_a.sign(&k);
        write(&dir, "ana-lab-a.json", &ana_a);
        let mut ana_b = fixture_result("ana", "lab-b", &[true, false]); // 2
        ana_b.sign(&k);
        write(&dir, "ana-lab-b.json", &ana_b);
        let mut bob_a = fixture_result("bob", "lab-a", &[true, false, false, false]); // 2
        bob_a.sign(&k);
        write(&dir, "bob-lab-a.json", &bob_a);
        // bob edits his lab-b result from 0 to full marks.
        let mut bob_b = fixture_result("bob", "lab-b", &[false, false]);
        bob_b.sign(&k);
        let forged = bob_b
            .to_json()
            .replace("\"earned\": 0", "\"earned\": 2")
            .replace("\"passed\": false", "\"passed\": true")
            .replace("\"score\": 0", "\"score\": 2")
            .replace("\"score\": 0", "\"score\": 4");
        std::fs::write(dir.join("bob-lab-b.json"), forged).unwrap();
        // cara hands in an unsigned result, and dan is not on the roster.
        write(
            &dir,
            "cara-lab-a.json",
            &fixture_result("cara", "lab-a", &[true; 4]),
        );
        let mut dan = fixture_result("dan", "lab-a", &[true; 4]);
        dan.sign(&k);
        write(&dir, "dan-lab-a.json", &dan);
        // ana's lab-a handed in twice under another name.
        write(&dir, "copy-of-ana.json", &ana_a);
        std::fs::write(dir.join("notes.json"), "{\"hello\": 1}").unwrap();

        let roster = Roster::parse(
            "roster.csv",
            "id,name\nana,Ana Lee\nbob,\"Bob, Jr\"\ncara,Cara\n",
        )
        .unwrap();
        let rep = ClassReport::build(&dir, Some(&roster), Some(&k)).unwrap();
        let csv = rep.csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "student,lab-a,lab-b,total,flags");
        assert_eq!(
            lines[1],
            "ana,8,2,10,\"copy-of-ana.json: duplicate: the same result as ana-lab-a.json, counted once\""
        );
        assert!(
            lines[2].starts_with("bob,2,,2,bob-lab-b.json: tampered"),
            "{}",
            lines[2]
        );
        assert!(
            lines[3].starts_with("cara,,,0,cara-lab-a.json: unsigned"),
            "{}",
            lines[3]
        );
        assert_eq!(lines.len(), 4, "{csv}");
        let reasons: Vec<(&str, &str)> = rep
            .flagged
            .iter()
            .map(|f| (f.file.as_str(), f.reason.split(':').next().unwrap()))
            .collect();
        assert_eq!(
            reasons,
            [
                ("bob-lab-b.json", "tampered"),
                ("cara-lab-a.json", "unsigned"),
                ("copy-of-ana.json", "duplicate"),
                ("dan-lab-a.json", "unknown student \"dan\""),
                ("notes.json", "not a kindling result (no \"format\""),
            ]
        );
        let html = rep.html();
        assert!(html.contains("<svg") && html.contains("class=\"bar\""));
        assert!(html.contains("Flagged results (5)"));
        assert!(
            !html.contains("<script") && !html.contains("http://")
                || html.contains("xmlns=\"http://www.w3.org/2000/svg\"")
        );
        // bob is stuck at step-0 of lab-a (his first failing step).
        assert!(
            html.contains("<td class=\"flag\">Step 0 <small>(step-0)</small></td>"),
            "{html}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn without_a_key_results_count_but_the_report_says_nothing_was_verified() {
        let dir = temp("nokey");
        write(
            &dir,
            "ana.json",
            &fixture_result("ana", "lab-a", &[true, false]),
        );
        let rep = ClassReport::build(&dir, None, None).unwrap();
        assert_eq!(rep.total("ana"), 2);
        assert!(rep.html().contains("<b>not verified</b>"));
        // Even unverified, totals that do not add up are refused.
        let edited = fixture_result("bob", "lab-a", &[true, false])
            .to_json()
            .replace(
                "\"score\": 2,\n  \"maxScore\"",
                "\"score\": 4,\n  \"maxScore\"",
            );
        std::fs::write(dir.join("bob.json"), edited).unwrap();
        let rep = ClassReport::build(&dir, None, None).unwrap();
        assert_eq!(rep.flagged.len(), 1, "{:?}", rep.flagged);
        assert!(rep.flagged[0].reason.starts_with("inconsistent"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_newer_result_replaces_an_older_one_and_the_older_is_listed() {
        let dir = temp("dup");
        let k = key();
        let mut old = fixture_result("ana", "lab-a", &[false, false]);
        old.graded_at = "2026-11-20T10:00:00Z".into();
        old.sign(&k);
        write(&dir, "a-old.json", &old);
        let mut new = fixture_result("ana", "lab-a", &[true, false]);
        new.graded_at = "2026-11-21T10:00:00Z".into();
        new.sign(&k);
        write(&dir, "b-new.json", &new);
        let rep = ClassReport::build(&dir, None, Some(&k)).unwrap();
        assert_eq!(rep.total("ana"), 2);
        assert_eq!(rep.flagged.len(), 1);
        assert_eq!(rep.flagged[0].file, "a-old.json");
        assert!(
            rep.flagged[0]
                .reason
                .contains("counted the newest, b-new.json")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rosters_read_quoted_csv_and_refuse_repeated_students() {
        let r = Roster::parse("r.csv", "Name,Student\n\"Lee, Ana\",ana\nBob,bob\n").unwrap();
        assert_eq!(
            r.students,
            [
                ("ana".to_string(), "Lee, Ana".to_string()),
                ("bob".into(), "Bob".into())
            ]
        );
        let e = Roster::parse("r.csv", "id\nana\nana\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "r.csv:3: student \"ana\" is listed twice; keep one row");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
    }

    #[test]
    fn the_chart_has_a_bar_per_check_sized_by_pass_rate() {
        let dir = temp("chart");
        write(
            &dir,
            "a.json",
            &fixture_result("ana", "lab-a", &[true, true]),
        );
        write(
            &dir,
            "b.json",
            &fixture_result("bob", "lab-a", &[true, false]),
        );
        let rep = ClassReport::build(&dir, None, None).unwrap();
        let rates = rep.pass_rates();
        assert_eq!(rates.len(), 2);
        assert_eq!((rates[0].4, rates[0].5), (2, 2));
        assert_eq!((rates[1].4, rates[1].5), (1, 2));
        let html = rep.html();
        assert!(
            html.contains("class=\"bar\" x=\"330\" y=\"4\" width=\"520\""),
            "{html}"
        );
        assert!(
            html.contains("class=\"bar\" x=\"330\" y=\"26\" width=\"260\""),
            "{html}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
