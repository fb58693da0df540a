//! Running a lab's shell snippets (setup, cleanup, solutions, lookalikes) the way a student's
//! terminal would: `sh -ec` in the lab's work folder, `KUBECONFIG` at the lab's cluster and the
//! running kindling first on `PATH`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not run the {what} script: {source}")]
    Spawn {
        what: String,
        source: std::io::Error,
    },
    #[error("the {what} script failed (exit {code}){}", tail(.output))]
    Failed {
        what: String,
        code: i32,
        output: String,
    },
    #[error("the {what} script did not finish within {secs}s")]
    Timeout { what: String, secs: u64 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A script may pull nothing, but may create a Deployment and wait for it.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

fn tail(output: &str) -> String {
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let from = lines.len().saturating_sub(6);
    format!(":\n  {}", lines[from..].join("\n  "))
}

/// What a lab's commands run with.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub lab: String,
    /// The lab cluster's kubeconfig file, when the lab has a cluster.
    pub kubeconfig: Option<PathBuf>,
    /// The folder scripts (and the lab shell) start in.
    pub workdir: PathBuf,
}

impl Env {
    /// `PATH` with the running kindling's folder first, so `kindling` in a script is this one.
    pub fn path_var() -> std::ffi::OsString {
        let mut dirs: Vec<PathBuf> = Vec::new();
        if let Ok(exe) = std::env::current_exe()
            && let Some(dir) = exe.parent()
        {
            dirs.push(dir.to_path_buf());
        }
        if let Some(path) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&path));
        }
        std::env::join_paths(dirs).unwrap_or_default()
    }

    /// Set the variables and folder on a command.
    pub fn apply(&self, cmd: &mut tokio::process::Command) {
        cmd.env("PATH", Self::path_var())
            .env("KINDLING_LAB", &self.lab);
        if let Some(kc) = &self.kubeconfig {
            cmd.env("KUBECONFIG", kc);
        }
        if self.workdir.is_dir() {
            cmd.current_dir(&self.workdir);
        }
    }

    /// The same for a std command (the lab shell runs students' lines this way).
    pub fn apply_std(&self, cmd: &mut std::process::Command) {
        cmd.env("PATH", Self::path_var())
            .env("KINDLING_LAB", &self.lab);
        if let Some(kc) = &self.kubeconfig {
            cmd.env("KUBECONFIG", kc);
        }
        if self.workdir.is_dir() {
            cmd.current_dir(&self.workdir);
        }
    }
}

/// Run `script` with `sh -ec`, capturing stdout and stderr together; `what` names it in errors.
/// With `echo`, the output is also copied to stderr as it comes (for `lab solve`).
pub async fn run(what: &str, script: &str, env: &Env, echo: bool) -> Result<String> {
    let mut cmd = tokio::process::Command::new("sh");
    // stderr is merged into the same pipe so the output keeps its order.
    let (reader, writer) = std::io::pipe().map_err(|source| Error::Spawn {
        what: what.into(),
        source,
    })?;
    let writer2 = writer.try_clone().map_err(|source| Error::Spawn {
        what: what.into(),
        source,
    })?;
    cmd.arg("-ec")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(writer2))
        .kill_on_drop(true);
    env.apply(&mut cmd);
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        what: what.into(),
        source,
    })?;
    // Our copies of the write end must close, or reading never sees end-of-file.
    drop(cmd);
    let mut reader =
        tokio::net::unix::pipe::Receiver::from_owned_fd(reader.into()).map_err(|source| {
            Error::Spawn {
                what: what.into(),
                source,
            }
        })?;
    let collect = async {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if echo {
                        use std::io::Write;
                        let _ = std::io::stderr().write_all(&buf[..n]);
                    }
                    out.extend_from_slice(&buf[..n]);
                }
            }
        }
        let status = child.wait().await;
        (out, status)
    };
    let (out, status) = tokio::time::timeout(SCRIPT_TIMEOUT, collect)
        .await
        .map_err(|_| Error::Timeout {
            what: what.into(),
            secs: SCRIPT_TIMEOUT.as_secs(),
        })?;
    let output = String::from_utf8_lossy(&out).into_owned();
    let status = status.map_err(|source| Error::Spawn {
        what: what.into(),
        source,
    })?;
    if status.success() {
        Ok(output)
    } else {
        Err(Error::Failed {
            what: what.into(),
            code: status.code().unwrap_or(-1),
            output,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scripts_stop_at_the_first_failing_command_and_show_its_output() {
        let env = Env {
            lab: "t".into(),
            kubeconfig: Some("/tmp/kc-for-test".into()),
            workdir: std::env::temp_dir(),
        };
        let out = run(
            "setup",
            "echo one\necho \"$KUBECONFIG $KINDLING_LAB\" >&2",
            &env,
            false,
        )
        .await
        .unwrap();
        assert_eq!(out, "one\n/tmp/kc-for-test t\n");
        let e = run("solution", "echo before\nfalse\necho after", &env, false)
            .await
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("the solution script failed (exit 1):"),
            "{msg}"
        );
        assert!(msg.contains("before") && !msg.contains("after"), "{msg}");
    }

    #[test]
    fn the_running_kindling_comes_first_on_path() {
        let path = Env::path_var();
        let first = std::env::split_paths(&path).next().unwrap();
        assert_eq!(first, std::env::current_exe().unwrap().parent().unwrap());
    }
}
