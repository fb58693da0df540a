//! `http` checks: a GET from the host (hyper), or from inside a container or pod (curl run
//! there, so the request starts where the student's traffic would), judged by status and body.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::{Context, Outcome, exec, first_lines};
use crate::lab::model::{HttpCheck, Target};

const TIMEOUT: Duration = Duration::from_secs(5);
/// Marks the status line curl appends after the body.
const STATUS_MARK: &str = "\n__kindling_http_status__:";

pub async fn run(h: &HttpCheck, ctx: &Context) -> Outcome {
    let target: Target = match h.from.as_ref().map(|f| f.value.parse()) {
        None => Target::Host,
        Some(Ok(t)) => t,
        Some(Err(e)) => return Outcome::unable(e),
    };
    let url = &h.url.value;
    let got = match &target {
        Target::Host => from_host(url).await,
        other => from_inside(other, url, ctx).await,
    };
    let (status, body) = match got {
        Ok(x) => x,
        Err(e) => {
            return Outcome::fail(vec![format!("✗ GET {url} from {target}: {e}")]);
        }
    };
    let mut passed = status == h.status;
    let mut ev = vec![format!(
        "{} GET {url} from {target}: {status} (want {})",
        if passed { "✓" } else { "✗" },
        h.status
    )];
    if let Some(re) = &h.body {
        let ok = regex::Regex::new(&re.value).is_ok_and(|r| r.is_match(&body));
        passed &= ok;
        ev.push(format!(
            "{} body {} /{}/",
            if ok { "✓" } else { "✗" },
            if ok { "matches" } else { "does not match" },
            re.value
        ));
    }
    ev.extend(
        first_lines(&body, 5)
            .into_iter()
            .map(|l| format!("  | {l}")),
    );
    Outcome {
        passed,
        evidence: ev,
    }
}

pub(crate) async fn from_host(url: &str) -> Result<(u16, String), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let fut = async {
        let resp = client.get(uri).await.map_err(|e| connection_error(&e))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the body: {e}"))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(TIMEOUT, fut)
        .await
        .map_err(|_| format!("no answer within {}s", TIMEOUT.as_secs()))?
}

/// The root cause, which is what a student needs ("connection refused").
fn connection_error(e: &dyn std::error::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

async fn from_inside(target: &Target, url: &str, ctx: &Context) -> Result<(u16, String), String> {
    let script = format!(
        "curl -sS -k -m {} -o - -w '{}%{{http_code}}' '{}'",
        TIMEOUT.as_secs(),
        STATUS_MARK.replace('\n', "\\n"),
        url.replace('\'', "")
    );
    let ran = exec::run_in(target, &["sh", "-c", &script], ctx).await?;
    let Some((body, status)) = ran.stdout.rsplit_once(STATUS_MARK) else {
        return Err(format!(
            "curl failed (exit {}): {}",
            ran.code,
            ran.stderr.trim()
        ));
    };
    let status: u16 = status.trim().parse().unwrap_or(0);
    if status == 0 {
        return Err(format!("curl: {}", ran.stderr.trim()));
    }
    Ok((status, body.to_string()))
}
