//! What the TUI shows and asks for, as plain data and one trait the `kindling` package
//! implements on its lab engine: the TUI has no lab logic of its own.

/// One lab in the picker.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabSummary {
    pub id: String,
    pub track: String,
    pub title: String,
    pub summary: String,
    pub minutes: u32,
    pub steps: usize,
    pub done: usize,
    pub points: u32,
    pub earned: u32,
    pub started: bool,
}

/// Where a step stands for the student.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StepState {
    Done,
    /// The first step neither done nor skipped: the one being checked.
    Current,
    /// The current step, whose last check round failed.
    Failed,
    Skipped,
    #[default]
    Todo,
}

/// A quiz question shown in a step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Question {
    pub id: String,
    pub text: String,
    pub choices: Vec<String>,
    /// The saved answer (0-based), if any; whether it is right is for the checks to say.
    pub answered: Option<usize>,
}

/// One step of an opened lab.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepInfo {
    pub id: String,
    pub title: String,
    /// The step's Markdown text.
    pub text: String,
    pub graded: bool,
    pub points: u32,
    pub state: StepState,
    pub hints: Vec<String>,
    /// How many hints the student has revealed.
    pub hints_shown: usize,
    pub questions: Vec<Question>,
}

/// An opened lab with the student's progress.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabDetail {
    pub id: String,
    pub title: String,
    pub steps: Vec<StepInfo>,
    /// Index of the current step; `None` when the lab is complete.
    pub current: Option<usize>,
    pub points: u32,
    pub earned: u32,
    /// Whether the lab has a cluster (and so a cluster panel).
    pub has_cluster: bool,
    pub started: bool,
}

/// One check's result with the evidence saying what it saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckView {
    pub title: String,
    pub passed: bool,
    pub points: u32,
    pub earned: u32,
    pub evidence: Vec<String>,
}

/// A check round of one step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Round {
    pub step: usize,
    pub passed: bool,
    pub checks: Vec<CheckView>,
    pub millis: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeRow {
    pub name: String,
    pub roles: String,
    pub ready: bool,
    pub ip: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodRow {
    pub namespace: String,
    pub name: String,
    pub phase: String,
    pub ip: String,
    pub node: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceRow {
    pub namespace: String,
    pub name: String,
    pub kind: String,
    pub cluster_ip: String,
    pub ports: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventRow {
    pub kind: String,
    pub object: String,
    pub reason: String,
    pub message: String,
}

/// The lab cluster as the watches last saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterSnapshot {
    pub nodes: Vec<NodeRow>,
    pub pods: Vec<PodRow>,
    pub services: Vec<ServiceRow>,
    /// Newest first.
    pub events: Vec<EventRow>,
    /// Why the panel is empty, when it is (no cluster yet, API unreachable).
    pub note: Option<String>,
}

/// The lab engine as the TUI uses it. Every call may block (the engine talks to Docker and the
/// cluster); the TUI calls the slow ones from its checker thread or while suspended.
pub trait LabSource: Send + Sync {
    /// Every lab in course order, with the student's progress.
    fn labs(&self) -> Vec<LabSummary>;
    /// One lab with its steps and progress.
    fn open(&self, lab: &str) -> Result<LabDetail, String>;
    /// Prepare the lab (images, cluster, setup) as `kindling lab start` does. Runs while the
    /// TUI is suspended, so it may print progress to the terminal.
    fn start(&self, lab: &str) -> Result<(), String>;
    /// Reveal one more hint of a step; returns how many are shown now.
    fn reveal_hint(&self, lab: &str, step: usize) -> Result<usize, String>;
    /// Run the current step's checks, recording the step as done when they all pass. `None`
    /// when the lab is complete.
    fn check(&self, lab: &str) -> Result<Option<Round>, String>;
    /// Save a quiz answer (`choice` 0-based).
    fn answer(&self, lab: &str, question: &str, choice: usize) -> Result<(), String>;
    /// Run the lab shell in this terminal until the student leaves it (TUI suspended).
    fn shell(&self, lab: &str) -> Result<(), String>;
    /// The lab cluster as last seen, for labs with a cluster; cheap (no request per call).
    fn cluster(&self, lab: &str) -> Option<ClusterSnapshot>;
    /// A counter that moves whenever the lab's cluster or the Docker engine reports an event,
    /// so the checks run again at once instead of at the next tick; cheap. A source without
    /// events keeps it at 0 and the checks run on the tick alone.
    fn changes(&self, _lab: &str) -> u64 {
        0
    }
}
