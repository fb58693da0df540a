//! `exec` checks: a command run on the host, in a Docker container (a node or any other) through
//! the Docker API, or in a pod through the Kubernetes API's exec (kube-rs WebSocket), judged by
//! exit code and output patterns.

use std::time::Duration;

use bollard::Docker;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use tokio::io::AsyncReadExt;

use super::{Context, Outcome, first_lines};
use crate::lab::model::{ExecCheck, Target};

/// A command in a check is a probe, not a job: it gets this long.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// What a command produced.
#[derive(Debug, Clone, Default)]
pub struct Ran {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
}

pub async fn run(e: &ExecCheck, ctx: &Context) -> Outcome {
    let target: Target = match e.target.value.parse() {
        Ok(t) => t,
        Err(err) => return Outcome::unable(err),
    };
    let ran = match run_in(&target, &["sh", "-c", &e.command], ctx).await {
        Ok(r) => r,
        Err(err) => return Outcome::unable(err),
    };
    judge(e, &target, &ran)
}

/// Judge a finished command against the check's expectations.
pub fn judge(e: &ExecCheck, target: &Target, ran: &Ran) -> Outcome {
    let mut passed = ran.code == e.exit_code;
    let mut ev = vec![format!(
        "{} `{}` in {target} exited {} (want {})",
        if passed { "✓" } else { "✗" },
        e.command.trim(),
        ran.code,
        e.exit_code
    )];
    if let Some(re) = &e.output {
        let ok = regex::Regex::new(&re.value).is_ok_and(|r| r.is_match(&ran.stdout));
        passed &= ok;
        ev.push(format!(
            "{} output {} /{}/",
            if ok { "✓" } else { "✗" },
            if ok { "matches" } else { "does not match" },
            re.value
        ));
    }
    if let Some(re) = &e.not_output {
        let hit = regex::Regex::new(&re.value).is_ok_and(|r| r.is_match(&ran.stdout));
        passed &= !hit;
        ev.push(format!(
            "{} output {} /{}/ (must not)",
            if hit { "✗" } else { "✓" },
            if hit { "matches" } else { "does not match" },
            re.value
        ));
    }
    ev.extend(
        first_lines(&ran.stdout, 5)
            .into_iter()
            .map(|l| format!("  | {l}")),
    );
    if ran.code != 0 {
        ev.extend(
            first_lines(&ran.stderr, 3)
                .into_iter()
                .map(|l| format!("  ! {l}")),
        );
    }
    Outcome {
        passed,
        evidence: ev,
    }
}

/// Run `argv` at `target`; an error means the command could not be started at all.
pub async fn run_in(target: &Target, argv: &[&str], ctx: &Context) -> Result<Ran, String> {
    let fut = async {
        match target {
            Target::Host => host(argv, ctx).await,
            Target::Container(c) => {
                let docker = ctx.docker().await?;
                container(docker, c, argv).await
            }
            Target::Pod {
                namespace,
                name,
                container,
            } => {
                let client = ctx.kube().await?;
                pod(client, namespace, name, container.as_deref(), argv).await
            }
        }
    };
    tokio::time::timeout(TIMEOUT, fut)
        .await
        .map_err(|_| format!("the command did not finish within {}s", TIMEOUT.as_secs()))?
}

async fn host(argv: &[&str], ctx: &Context) -> Result<Ran, String> {
    let mut cmd = tokio::process::Command::new(argv[0]);
    cmd.args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    ctx.env.apply(&mut cmd);
    let out = cmd
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
    Ok(Ran {
        code: out.status.code().map(i64::from).unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// `docker exec` through the API, keeping stdout and stderr apart.
pub async fn container(docker: &Docker, name: &str, argv: &[&str]) -> Result<Ran, String> {
    use bollard::container::LogOutput;
    use bollard::exec::{CreateExecOptions, StartExecResults};
    let exec = docker
        .create_exec(
            name,
            CreateExecOptions {
                cmd: Some(argv.iter().map(|s| s.to_string()).collect()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| match &e {
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            } => {
                format!("no container named {name} (`docker ps -a` lists them)")
            }
            bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            } => {
                format!("container {name} is not running")
            }
            _ => format!("cannot exec in container {name}: {e}"),
        })?;
    let mut ran = Ran::default();
    if let StartExecResults::Attached { mut output, .. } =
        docker
            .start_exec(&exec.id, None)
            .await
            .map_err(|e| format!("cannot exec in container {name}: {e}"))?
    {
        while let Some(msg) = output.next().await {
            match msg.map_err(|e| format!("exec in {name}: {e}"))? {
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    ran.stdout.push_str(&String::from_utf8_lossy(&message))
                }
                LogOutput::StdErr { message } => {
                    ran.stderr.push_str(&String::from_utf8_lossy(&message))
                }
                LogOutput::StdIn { .. } => {}
            }
        }
    }
    ran.code = docker
        .inspect_exec(&exec.id)
        .await
        .map_err(|e| format!("exec in {name}: {e}"))?
        .exit_code
        .unwrap_or(-1);
    Ok(ran)
}

/// `kubectl exec` done the way kubectl does it: the API's `pods/exec` over a WebSocket.
pub async fn pod(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    container: Option<&str>,
    argv: &[&str],
) -> Result<Ran, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut ap = AttachParams::default()
        .stdout(true)
        .stderr(true)
        .stdin(false);
    if let Some(c) = container {
        ap = ap.container(c);
    }
    let mut proc = pods
        .exec(name, argv.iter().copied(), &ap)
        .await
        .map_err(|e| format!("cannot exec in pod {namespace}/{name}: {e}"))?;
    let mut out_r = proc.stdout().ok_or("exec gave no stdout")?;
    let mut err_r = proc.stderr().ok_or("exec gave no stderr")?;
    let status = proc.take_status().ok_or("exec gave no status")?;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let (a, b) = tokio::join!(
        out_r.read_to_end(&mut stdout),
        err_r.read_to_end(&mut stderr)
    );
    a.and(b)
        .map_err(|e| format!("exec in pod {namespace}/{name}: {e}"))?;
    let status = status.await;
    let _ = proc.join().await;
    let code = match &status {
        Some(s) if s.status.as_deref() == Some("Success") => 0,
        Some(s) => s
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .and_then(|c| c.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
            .and_then(|c| c.message.as_deref())
            .and_then(|m| m.parse().ok())
            .unwrap_or(-1),
        None => -1,
    };
    Ok(Ran {
        code,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}
