//! `docker` checks: containers, networks, images and volumes read through the Docker API
//! (bollard), compared on the same JSON `docker inspect` prints.

use bollard::Docker;
use bollard::query_parameters::ListContainersOptionsBuilder;
use serde_json::Value;

use super::{Context, Outcome, fields};
use crate::cluster::docker::{is_status, read_file};
use crate::cluster::load::normalize;
use crate::lab::model::{
    ContainerCheck, DockerCheck, FieldMatch, FileMatch, ImageCheck, NetworkCheck, RunMatch,
    ServeMatch, VolumeCheck,
};

pub async fn run(d: &DockerCheck, ctx: &Context) -> Outcome {
    let docker = match ctx.docker().await {
        Ok(d) => d,
        Err(e) => return Outcome::unable(e),
    };
    if let Some(c) = &d.container {
        container(docker, c).await
    } else if let Some(n) = &d.network {
        network(docker, n).await
    } else if let Some(i) = &d.image {
        image(docker, i).await
    } else if let Some(v) = &d.volume {
        volume(docker, v).await
    } else {
        Outcome::unable("docker check names nothing to look at")
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn mark(ok: bool) -> &'static str {
    if ok { "✓" } else { "✗" }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

async fn inspect_container(docker: &Docker, name: &str) -> Result<Option<Value>, String> {
    match docker.inspect_container(name, None).await {
        Ok(c) => Ok(Some(to_json(&c))),
        Err(e) if is_status(&e, 404) => Ok(None),
        Err(e) => Err(format!("cannot inspect container {name}: {e}")),
    }
}

/// The image ID `reference` names on this host, if it exists.
async fn image_id(docker: &Docker, reference: &str) -> Option<String> {
    docker
        .inspect_image(reference)
        .await
        .ok()
        .and_then(|i| i.id)
}

async fn container(docker: &Docker, c: &ContainerCheck) -> Outcome {
    let want_image_id = match &c.image {
        Some(i) => image_id(docker, i).await,
        None => None,
    };
    let image_matches = |j: &Value| -> bool {
        let Some(want) = &c.image else { return true };
        normalize(str_at(j, "/Config/Image")) == normalize(want)
            || want_image_id
                .as_deref()
                .is_some_and(|id| str_at(j, "/Image") == id)
    };
    let candidates: Vec<Value> = if let Some(name) = &c.name {
        match inspect_container(docker, name).await {
            Ok(Some(j)) => vec![j],
            Ok(None) => {
                return Outcome::fail(vec![format!(
                    "✗ no container named {name} (`docker ps -a` lists them)"
                )]);
            }
            Err(e) => return Outcome::unable(e),
        }
    } else {
        let opts = ListContainersOptionsBuilder::default().all(true).build();
        let list = match docker.list_containers(Some(opts)).await {
            Ok(l) => l,
            Err(e) => return Outcome::unable(format!("cannot list containers: {e}")),
        };
        let mut v = Vec::new();
        for s in list {
            let Some(id) = s.id else { continue };
            if let Ok(Some(j)) = inspect_container(docker, &id).await
                && image_matches(&j)
            {
                v.push(j);
            }
        }
        if v.is_empty() {
            return Outcome::fail(vec![format!(
                "✗ no container from image {} (`docker ps -a` lists them)",
                c.image.as_deref().unwrap_or_default()
            )]);
        }
        v
    };
    // With several candidates (found by image), one that satisfies everything is enough.
    let mut best: Option<Outcome> = None;
    for j in &candidates {
        let o = judge_container(docker, c, j, image_matches(j)).await;
        if o.passed {
            return o;
        }
        best.get_or_insert(o);
    }
    best.unwrap_or_default()
}

async fn judge_container(
    docker: &Docker,
    c: &ContainerCheck,
    j: &Value,
    image_ok: bool,
) -> Outcome {
    let name = str_at(j, "/Name").trim_start_matches('/').to_string();
    let mut passed = true;
    let mut ev = vec![format!(
        "container {name}: {}, image {}, network {}{}",
        str_at(j, "/State/Status"),
        str_at(j, "/Config/Image"),
        str_at(j, "/HostConfig/NetworkMode"),
        describe_ports(j)
    )];
    if let Some(want) = &c.image {
        passed &= image_ok;
        ev.push(format!(
            "{} image {} (want {want})",
            mark(image_ok),
            str_at(j, "/Config/Image")
        ));
    }
    if let Some(state) = &c.state {
        let ok = str_at(j, "/State/Status") == state.value;
        passed &= ok;
        ev.push(format!(
            "{} state {} (want {})",
            mark(ok),
            str_at(j, "/State/Status"),
            state.value
        ));
    }
    if let Some(mode) = &c.network_mode {
        let ok = network_mode_matches(docker, j, mode).await;
        passed &= ok;
        let attached: Vec<&String> = j
            .pointer("/NetworkSettings/Networks")
            .and_then(Value::as_object)
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        ev.push(format!(
            "{} network mode {} (networks: {}) (want {mode})",
            mark(ok),
            str_at(j, "/HostConfig/NetworkMode"),
            if attached.is_empty() {
                "none".to_string()
            } else {
                attached
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ));
    }
    for p in &c.publish {
        let proto = p
            .protocol
            .as_ref()
            .map(|s| s.value.as_str())
            .unwrap_or("tcp");
        let key = format!("{}/{proto}", p.container_port);
        let bindings = port_bindings(j, &key);
        let ok = match p.host_port {
            Some(hp) => bindings.iter().any(|(_, port)| *port == hp.to_string()),
            None => !bindings.is_empty(),
        };
        passed &= ok;
        let seen = if bindings.is_empty() {
            "not published".to_string()
        } else {
            bindings
                .iter()
                .map(|(ip, port)| match ip.as_str() {
                    "" => format!("0.0.0.0:{port}"),
                    v6 if v6.contains(':') => format!("[{v6}]:{port}"),
                    v4 => format!("{v4}:{port}"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        ev.push(format!(
            "{} port {key}: {seen} (want host port {})",
            mark(ok),
            p.host_port
                .map(|h| h.to_string())
                .unwrap_or_else(|| "any".into())
        ));
    }
    let mounts = j
        .get("Mounts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for m in &c.mounts {
        let found = mounts
            .iter()
            .find(|x| str_at(x, "/Destination") == m.destination);
        let ok = found.is_some_and(|x| {
            m.kind.as_deref().is_none_or(|t| str_at(x, "/Type") == t)
                && m.name.as_deref().is_none_or(|n| str_at(x, "/Name") == n)
                && m.source
                    .as_deref()
                    .is_none_or(|s| str_at(x, "/Source") == s)
        });
        passed &= ok;
        let seen = match found {
            None => "nothing mounted".to_string(),
            Some(x) => format!(
                "{} {}",
                str_at(x, "/Type"),
                match str_at(x, "/Name") {
                    "" => str_at(x, "/Source"),
                    n => n,
                }
            ),
        };
        ev.push(format!(
            "{} mount {}: {seen} (want {}{})",
            mark(ok),
            m.destination,
            m.kind.as_deref().unwrap_or("any type"),
            m.name
                .as_deref()
                .or(m.source.as_deref())
                .map(|n| format!(" {n}"))
                .unwrap_or_default()
        ));
    }
    apply_fields(j, &c.fields, &mut passed, &mut ev);
    Outcome {
        passed,
        evidence: ev,
    }
}

fn apply_fields(j: &Value, matchers: &[FieldMatch], passed: &mut bool, ev: &mut Vec<String>) {
    for m in matchers {
        let (ok, line) = fields::check(j, m);
        *passed &= ok;
        ev.push(line);
    }
}

/// (host IP, host port) pairs for `key` (`8080/tcp`): the live bindings of a running container,
/// else what it was created with.
fn port_bindings(j: &Value, key: &str) -> Vec<(String, String)> {
    let read = |v: Option<&Value>| -> Vec<(String, String)> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|b| {
                        (
                            str_at(b, "/HostIp").to_string(),
                            str_at(b, "/HostPort").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let live = read(j.pointer("/NetworkSettings/Ports").and_then(|p| p.get(key)));
    if !live.is_empty() {
        return live;
    }
    read(
        j.pointer("/HostConfig/PortBindings")
            .and_then(|p| p.get(key)),
    )
}

fn describe_ports(j: &Value) -> String {
    let mut out = Vec::new();
    for src in ["/NetworkSettings/Ports", "/HostConfig/PortBindings"] {
        if let Some(map) = j.pointer(src).and_then(Value::as_object) {
            for (k, v) in map {
                for b in v.as_array().into_iter().flatten() {
                    out.push(format!("{k}→{}", str_at(b, "/HostPort")));
                }
            }
        }
        if !out.is_empty() {
            break;
        }
    }
    out.dedup();
    if out.is_empty() {
        String::new()
    } else {
        format!(", ports {}", out.join(" "))
    }
}

/// bridge | host | none | container:<name or id> | <user-defined network name>.
async fn network_mode_matches(docker: &Docker, j: &Value, want: &str) -> bool {
    let mode = str_at(j, "/HostConfig/NetworkMode");
    let attached = |net: &str| {
        j.pointer("/NetworkSettings/Networks")
            .and_then(Value::as_object)
            .is_some_and(|m| m.contains_key(net))
    };
    match want {
        // `default` is what the engine records for a container started without --network.
        "bridge" => matches!(mode, "bridge" | "default") && attached("bridge"),
        "host" => mode == "host",
        "none" => mode == "none",
        _ => {
            if let Some(other) = want.strip_prefix("container:") {
                let Some(have) = mode.strip_prefix("container:") else {
                    return false;
                };
                // The engine records whatever the user typed (name or ID): compare IDs.
                let id_of = |s: &str| {
                    let s = s.to_string();
                    async move {
                        docker
                            .inspect_container(&s, None)
                            .await
                            .ok()
                            .and_then(|c| c.id)
                    }
                };
                let (a, b) = (id_of(have).await, id_of(other).await);
                a.is_some() && a == b
            } else {
                attached(want)
            }
        }
    }
}

async fn network(docker: &Docker, n: &NetworkCheck) -> Outcome {
    let net = match docker.inspect_network(&n.name, None).await {
        Ok(net) => to_json(&net),
        Err(e) if is_status(&e, 404) => {
            return Outcome::fail(vec![format!(
                "✗ no network named {} (`docker network ls` lists them)",
                n.name
            )]);
        }
        Err(e) => return Outcome::unable(format!("cannot inspect network {}: {e}", n.name)),
    };
    let members: Vec<String> = net
        .get("Containers")
        .and_then(Value::as_object)
        .map(|m| m.values().map(|c| str_at(c, "/Name").to_string()).collect())
        .unwrap_or_default();
    let mut passed = true;
    let mut ev = vec![format!(
        "network {}: driver {}, containers: {}",
        n.name,
        str_at(&net, "/Driver"),
        if members.is_empty() {
            "none".to_string()
        } else {
            members.join(", ")
        }
    )];
    if let Some(d) = &n.driver {
        let ok = str_at(&net, "/Driver") == d;
        passed &= ok;
        ev.push(format!(
            "{} driver {} (want {d})",
            mark(ok),
            str_at(&net, "/Driver")
        ));
    }
    for c in &n.containers {
        let ok = members.iter().any(|m| m == c);
        passed &= ok;
        ev.push(format!("{} container {c} attached", mark(ok)));
    }
    apply_fields(&net, &n.fields, &mut passed, &mut ev);
    Outcome {
        passed,
        evidence: ev,
    }
}

async fn image(docker: &Docker, i: &ImageCheck) -> Outcome {
    let img = match docker.inspect_image(&i.reference).await {
        Ok(img) => to_json(&img),
        Err(e) if is_status(&e, 404) => {
            return Outcome::fail(vec![format!(
                "✗ no image {} (`docker images` lists them)",
                i.reference
            )]);
        }
        Err(e) => return Outcome::unable(format!("cannot inspect image {}: {e}", i.reference)),
    };
    let layers = img
        .pointer("/RootFS/Layers")
        .and_then(Value::as_array)
        .map(Vec::len)
        .unwrap_or(0);
    let size_mb = img.get("Size").and_then(Value::as_f64).unwrap_or(0.0) / 1_000_000.0;
    let mut passed = true;
    let mut ev = vec![format!(
        "image {}: {layers} layer(s), {size_mb:.1} MB",
        i.reference
    )];
    if let Some(min) = i.min_layers {
        let ok = layers >= min;
        passed &= ok;
        ev.push(format!(
            "{} {layers} layers (want at least {min})",
            mark(ok)
        ));
    }
    if let Some(max) = i.max_layers {
        let ok = layers <= max;
        passed &= ok;
        ev.push(format!("{} {layers} layers (want at most {max})", mark(ok)));
    }
    if let Some(max) = i.max_size_mb {
        let ok = size_mb <= max;
        passed &= ok;
        ev.push(format!(
            "{} {size_mb:.1} MB (want at most {max} MB)",
            mark(ok)
        ));
    }
    if !i.history_contains.is_empty() {
        let history: Vec<String> = match docker.image_history(&i.reference).await {
            Ok(h) => h.into_iter().map(|x| x.created_by).collect(),
            Err(e) => {
                return Outcome::unable(format!("cannot read the history of {}: {e}", i.reference));
            }
        };
        for want in &i.history_contains {
            let ok = history.iter().any(|h| h.contains(want.as_str()));
            passed &= ok;
            ev.push(format!("{} history has {want:?}", mark(ok)));
        }
    }
    apply_fields(&img, &i.fields, &mut passed, &mut ev);
    if let Err(e) = read_files(docker, &i.reference, None, &i.files, &mut passed, &mut ev).await {
        return Outcome::unable(e);
    }
    let mut judged = |(ok, line): (bool, String)| {
        passed &= ok;
        ev.push(line);
    };
    let failed = |e: String| (false, format!("✗ {e}"));
    if let Some(r) = &i.runs {
        judged(runs(docker, &i.reference, r).await.unwrap_or_else(failed));
    }
    if let Some(sv) = &i.serves {
        judged(
            serves(docker, &i.reference, sv)
                .await
                .unwrap_or_else(failed),
        );
    }
    Outcome {
        passed,
        evidence: ev,
    }
}

/// How long the image's own command may run (`runs`) or take to answer (`serves`).
const RUN_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A started container from `image` with the image's own command and configuration, as
/// `docker run IMAGE` makes it (through the API: no CLI process, a fraction of the time).
async fn start_own(docker: &Docker, image: &str) -> Result<String, String> {
    let body = bollard::models::ContainerCreateBody {
        image: Some(image.to_string()),
        labels: Some([("dev.kindling.check".to_string(), "run".to_string())].into()),
        ..Default::default()
    };
    let id = docker
        .create_container(None, body)
        .await
        .map_err(|e| format!("cannot create a container from {image}: {e}"))?
        .id;
    if let Err(e) = docker.start_container(&id, None).await {
        remove(docker, &id).await;
        return Err(format!("cannot start a container from {image}: {e}"));
    }
    Ok(id)
}

async fn remove(docker: &Docker, id: &str) {
    let opts = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
        .force(true)
        .build();
    let _ = docker.remove_container(id, Some(opts)).await;
}

/// `runs`: run the image's command to its end and match what it printed; whether it did and
/// the evidence line, or why no container could run.
async fn runs(docker: &Docker, image: &str, r: &RunMatch) -> Result<(bool, String), String> {
    use futures::StreamExt;
    let id = start_own(docker, image).await?;
    let waited = tokio::time::timeout(RUN_LIMIT, docker.wait_container(&id, None).next()).await;
    let opts = bollard::query_parameters::LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .build();
    let mut out = String::new();
    let mut logs = std::pin::pin!(docker.logs(&id, Some(opts)));
    while let Some(Ok(chunk)) = logs.next().await {
        out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
    }
    remove(docker, &id).await;
    let re = regex::Regex::new(&r.output.value);
    let ok = waited.is_ok() && re.is_ok_and(|re| re.is_match(&out));
    let first = out.lines().next().unwrap_or("(nothing)");
    let line = match waited {
        Err(_) => format!(
            "✗ docker run {image}: still running after {} s",
            RUN_LIMIT.as_secs()
        ),
        Ok(_) if ok => format!("✓ docker run {image} prints /{}/", r.output.value),
        Ok(_) => format!(
            "✗ docker run {image} printed {first:?}, not /{}/",
            r.output.value
        ),
    };
    Ok((ok, line))
}

/// `serves`: start the image's command and ask it over HTTP at the container's address, as
/// [`runs`] answers.
async fn serves(docker: &Docker, image: &str, sv: &ServeMatch) -> Result<(bool, String), String> {
    let id = start_own(docker, image).await?;
    let running = || async {
        let j = inspect_container(docker, &id).await.ok().flatten()?;
        if j.pointer("/State/Running") != Some(&Value::Bool(true)) {
            return None;
        }
        // The address on its network (the default bridge, as `docker run` attaches it).
        let nets = j.pointer("/NetworkSettings/Networks")?.as_object()?;
        nets.values()
            .filter_map(|n| n["IPAddress"].as_str())
            .find(|ip| !ip.is_empty())
            .map(str::to_string)
    };
    // The server needs a moment to listen: ask until it answers, exits or the time is up.
    let started = std::time::Instant::now();
    let got = loop {
        let Some(ip) = running().await else {
            break Err(
                "the container exited or has no address (`docker run` it to see why)".into(),
            );
        };
        match super::http::from_host(&format!("http://{ip}:{}{}", sv.port, sv.path)).await {
            Ok(r) => break Ok(r),
            Err(e) if started.elapsed() >= RUN_LIMIT => break Err(e),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    };
    remove(docker, &id).await;
    let shown = format!("GET :{}{} of a container from {image}", sv.port, sv.path);
    Ok(match got {
        Ok((status, body)) if body.contains(&sv.body) => (
            true,
            format!("✓ {shown}: {status}, the body has {:?}", sv.body),
        ),
        Ok((status, body)) => {
            let first = body.lines().next().unwrap_or("(empty)");
            (
                false,
                format!(
                    "✗ {shown}: {status}, the body lacks {:?} (it starts: {first:?})",
                    sv.body
                ),
            )
        }
        Err(e) => (false, format!("✗ {shown}: {e}")),
    })
}

/// Where a volume is mounted in the container that reads its files.
const VOLUME_AT: &str = "/kindling-volume";
/// The image of that container: bundled, tiny, and never started.
const VOLUME_READER: &str = "kindling/pause:3.10";

/// Checks `files` by reading them out of a container created, never started, from `image`
/// (with `volume` mounted at VOLUME_AT), then removed: a fraction of the cost of
/// `docker run --rm IMAGE cat FILE`, which keeps a step's check round within its budget.
async fn read_files(
    docker: &Docker,
    image: &str,
    volume: Option<&str>,
    files: &[FileMatch],
    passed: &mut bool,
    ev: &mut Vec<String>,
) -> Result<(), String> {
    use bollard::models::{ContainerCreateBody, HostConfig};
    if files.is_empty() {
        return Ok(());
    }
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        // Never run; a command is only needed for images that have none.
        cmd: Some(vec!["true".into()]),
        host_config: Some(HostConfig {
            binds: volume.map(|v| vec![format!("{v}:{VOLUME_AT}:ro")]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = docker
        .create_container(None, body)
        .await
        .map_err(|e| format!("cannot create a container from {image} to read files: {e}"))?
        .id;
    let prefix = if volume.is_some() { VOLUME_AT } else { "" };
    for f in files {
        let path = &f.path.value;
        let text = match read_file(docker, &id, &format!("{prefix}{path}")).await {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(_) => {
                *passed = false;
                ev.push(format!("✗ no file {path}"));
                continue;
            }
        };
        let (ok, want) = match (&f.contains, &f.matches) {
            (Some(c), _) => (text.contains(c.as_str()), format!("{c:?}")),
            (None, Some(re)) => (
                regex::Regex::new(&re.value).is_ok_and(|r| r.is_match(&text)),
                format!("/{}/", re.value),
            ),
            (None, None) => (true, String::new()),
        };
        *passed &= ok;
        let first = text.lines().next().unwrap_or("(empty)");
        ev.push(if want.is_empty() {
            format!("✓ {path} is there")
        } else if ok {
            format!("✓ {path} has {want}")
        } else {
            format!("✗ {path} lacks {want} (it starts: {first:?})")
        });
    }
    remove(docker, &id).await;
    Ok(())
}

async fn volume(docker: &Docker, v: &VolumeCheck) -> Outcome {
    let vol = match docker.inspect_volume(&v.name).await {
        Ok(vol) => to_json(&vol),
        Err(e) if is_status(&e, 404) => {
            return Outcome::fail(vec![format!(
                "✗ no volume named {} (`docker volume ls` lists them)",
                v.name
            )]);
        }
        Err(e) => return Outcome::unable(format!("cannot inspect volume {}: {e}", v.name)),
    };
    let mut passed = true;
    let mut ev = vec![format!(
        "✓ volume {}: driver {}",
        v.name,
        str_at(&vol, "/Driver")
    )];
    apply_fields(&vol, &v.fields, &mut passed, &mut ev);
    if v.unused {
        let filters = std::collections::HashMap::from([("volume", vec![v.name.as_str()])]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let users: Vec<String> = match docker.list_containers(Some(opts)).await {
            Ok(l) => l
                .into_iter()
                .flat_map(|c| c.names.unwrap_or_default())
                .map(|n| n.trim_start_matches('/').to_string())
                .collect(),
            Err(e) => return Outcome::unable(format!("cannot list containers: {e}")),
        };
        passed &= users.is_empty();
        ev.push(if users.is_empty() {
            format!("✓ no container uses {}", v.name)
        } else {
            format!(
                "✗ {} still use(s) {} (`docker rm` removes a container, never its named volumes)",
                users.join(", "),
                v.name
            )
        });
    }
    if let Err(e) = read_files(
        docker,
        VOLUME_READER,
        Some(&v.name),
        &v.files,
        &mut passed,
        &mut ev,
    )
    .await
    {
        return Outcome::unable(e);
    }
    Outcome {
        passed,
        evidence: ev,
    }
}
