//! Every piece of text the TUI itself shows (lab text comes from the labs).

pub const APP_TITLE: &str = "Kindling labs";
pub const PICKER_HELP: &str = "↑↓ choose  Enter open  ? keys  q quit";
pub const LAB_HELP: &str = "←→ step  ↑↓ scroll  h hint  c check  s shell  Esc labs  ? keys  q quit";
pub const NO_LABS: &str = "No labs found. `kindling lab lint --static` shows broken lab files.";
pub const STEPS: &str = "Steps";
pub const CHECKS: &str = "Checks";
pub const CLUSTER: &str = "Cluster";
pub const HELP_TITLE: &str = "Keys (any key closes)";
pub const CHECKING: &str = "checking…";
pub const NOT_CHECKED: &str =
    "Not checked yet; checks run every 2 s and after each change (c checks now).";
pub const READING_STEP: &str = "A reading step: nothing to check.";
pub const STEP_DONE: &str = "✓ This step is done.";
pub const NOT_CURRENT: &str = "Checks run on the current step.";
pub const LAB_COMPLETE: &str = "✓ Lab complete";
pub const NO_HINTS: &str = "This step has no hints.";
pub const LAST_HINT: &str = "That was the last hint; `kindling lab solve` shows the solution.";
pub const NOT_STARTED: &str = "not started";
pub const QUIZ_KEYS: &str = "press 1-9 to answer";
pub const QUIZ_NEXT: &str = "a: next question";
pub const YOUR_ANSWER: &str = "your answer";
pub const STARTING: &str = "Preparing the lab (images, cluster, setup)…";
pub const PRESS_ENTER: &str = "Press Enter to go back to the labs.";
pub const NODES: &str = "Nodes";
pub const PODS: &str = "Pods";
pub const SERVICES: &str = "Services";
pub const EVENTS: &str = "Events";
pub const CLUSTER_WAIT: &str = "Connecting to the lab cluster…";

/// Keys shown by `?`: (key, what it does).
pub const KEYS: &[(&str, &str)] = &[
    ("↑ ↓  j k", "choose a lab / scroll the step text"),
    ("PgUp PgDn", "scroll a page"),
    ("Enter", "open the lab (prepares it the first time)"),
    ("← →  [ ]", "previous / next step"),
    ("h", "reveal the next hint"),
    ("c", "check the current step now"),
    ("1-9", "answer the step's quiz question"),
    ("a", "next quiz question of the step"),
    ("Tab", "step text / live cluster"),
    ("s", "drop to the lab shell (quit it to come back)"),
    ("Esc  b", "back to the labs"),
    ("?", "show these keys"),
    ("q  Ctrl-C", "quit (progress is kept)"),
];

pub fn hint_label(n: usize, of: usize) -> String {
    format!("Hint {n}/{of}")
}

pub fn hints_left(shown: usize, of: usize) -> String {
    format!("{} of {of} hints shown; h reveals the next", shown)
}

pub fn progress(done: usize, steps: usize, earned: u32, points: u32) -> String {
    format!("{done}/{steps} steps  {earned}/{points} pt")
}

pub fn minutes(m: u32) -> String {
    format!("{m} min")
}

pub fn step_heading(i: usize, n: usize, title: &str) -> String {
    format!("Step {}/{n}: {title}", i + 1)
}

pub fn answered(q: &str, choice: usize) -> String {
    format!("Saved answer {} to {q}; checking…", choice + 1)
}

pub fn round_result(passed: usize, total: usize, millis: u64) -> String {
    format!("{passed}/{total} passed ({millis} ms)")
}

pub fn complete(earned: u32, points: u32) -> String {
    format!("✓ Lab complete: {earned} of {points} points")
}

pub fn error(e: &str) -> String {
    format!("error: {e}")
}
