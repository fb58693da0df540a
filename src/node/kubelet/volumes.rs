//! The files of configMap, secret, downwardAPI and projected volumes (service-account tokens
//! and the default `/var/run/secrets/kubernetes.io/serviceaccount` included), written the way
//! upstream's AtomicWriter does, and the pod's kubelet-managed `/etc/hosts`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine;
use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, Volume,
};
use kube::api::Api;
use sha2::{Digest, Sha256};

use super::spec::{self, Downward};
use crate::consts::PKI_DIR;

/// Where upstream's default projected volume is mounted in every container.
pub const SERVICE_ACCOUNT_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The kubelet's stand-in for admission's `kube-api-access-<random>` volume.
pub const DEFAULT_TOKEN_VOLUME: &str = "kube-api-access";
/// The ConfigMap upstream publishes in every namespace with the cluster's CA.
const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
/// The API server's audience and issuer, as kubeadm configures them.
const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Files are world-readable unless the pod says otherwise, as upstream's defaultMode 0644.
const DEFAULT_MODE: u32 = 0o644;
/// admission's expirationSeconds for the default token.
const DEFAULT_TOKEN_SECONDS: i64 = 3607;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    #[error("configmap references non-existent config key: {0}")]
    ConfigMapKeyNotFound(String),
    #[error("references non-existent secret key: {0}")]
    SecretKeyNotFound(String),
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Spec(#[from] spec::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One file of a volume: its path inside the volume, bytes and mode.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    pub path: String,
    pub data: Vec<u8>,
    pub mode: u32,
}

/// What the kubelet fetched for the pod's volumes, so building files stays pure.
#[derive(Debug, Default)]
pub struct Fetched {
    pub config_maps: BTreeMap<String, Option<ConfigMap>>,
    pub secrets: BTreeMap<String, Option<Secret>>,
    /// The cluster CA (PEM), for kube-root-ca.crt when the ConfigMap isn't published.
    pub ca_pem: String,
    /// A token for `serviceAccountToken` sources: (audience, seconds) → token.
    pub now: i64,
    pub token_key: Vec<u8>,
}

/// Does the pod get the default service-account volume? Upstream's admission adds it unless
/// automounting is off or a container already mounts that path; the API server here doesn't
/// (yet), so the kubelet does.
pub fn wants_default_token(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    if spec.automount_service_account_token == Some(false) {
        return false;
    }
    let has_admission_volume = spec
        .volumes
        .iter()
        .flatten()
        .any(|v| v.name.starts_with("kube-api-access-"));
    !has_admission_volume
}

/// Config maps and secrets the pod's volumes name.
fn referenced(pod: &Pod) -> (Vec<String>, Vec<String>) {
    let (mut cms, mut secrets) = (vec![], vec![]);
    for v in volumes(pod) {
        if let Some(c) = &v.config_map {
            cms.push(c.name.clone());
        }
        if let Some(s) = &v.secret {
            secrets.extend(s.secret_name.clone());
        }
        for src in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(c) = &src.config_map {
                cms.push(c.name.clone());
            }
            if let Some(s) = &src.secret {
                secrets.push(s.name.clone());
            }
        }
    }
    cms.sort();
    cms.dedup();
    secrets.sort();
    secrets.dedup();
    (cms, secrets)
}

fn volumes(pod: &Pod) -> impl Iterator<Item = &Volume> {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
}

/// True when the pod has volumes whose files the kubelet writes (and refreshes).
pub fn has_file_volumes(pod: &Pod) -> bool {
    wants_default_token(pod)
        || volumes(pod).any(|v| {
            v.config_map.is_some()
                || v.secret.is_some()
                || v.downward_api.is_some()
                || v.projected.is_some()
        })
}

/// Fetches what the pod's volumes refer to.
pub async fn fetch(client: &kube::Client, pod: &Pod, token_key: &[u8]) -> Result<Fetched> {
    let ns = spec::pod_ref(pod).namespace;
    let (cms, secrets) = referenced(pod);
    let mut f = Fetched {
        ca_pem: std::fs::read_to_string(format!("{PKI_DIR}/ca.crt")).unwrap_or_default(),
        now: jiff::Timestamp::now().as_second(),
        token_key: token_key.to_vec(),
        ..Default::default()
    };
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    for name in cms {
        f.config_maps
            .insert(name.clone(), api.get_opt(&name).await?);
    }
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    for name in secrets {
        f.secrets.insert(name.clone(), api.get_opt(&name).await?);
    }
    Ok(f)
}

fn config_map_data(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut m: BTreeMap<String, Vec<u8>> = cm
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    m.extend(
        cm.binary_data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0)),
    );
    m
}

pub fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut m: BTreeMap<String, Vec<u8>> = s
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    m.extend(
        s.string_data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes())),
    );
    m
}

/// Picks `items` out of `data` (all keys when None), as upstream's MakePayload.
fn pick(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    mode: u32,
    optional: bool,
    missing: impl Fn(&str) -> Error,
) -> Result<Vec<File>> {
    let Some(items) = items else {
        return Ok(data
            .iter()
            .map(|(k, v)| File {
                path: k.clone(),
                data: v.clone(),
                mode,
            })
            .collect());
    };
    let mut out = vec![];
    for i in items {
        match data.get(&i.key) {
            Some(v) => out.push(File {
                path: i.path.clone(),
                data: v.clone(),
                mode: i.mode.map(|m| m as u32).unwrap_or(mode),
            }),
            None if optional => {}
            None => return Err(missing(&i.key)),
        }
    }
    Ok(out)
}

/// Upstream's FormatMap: `key="value"` lines, sorted, without a final newline.
pub fn format_map(m: Option<&BTreeMap<String, String>>) -> String {
    m.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn downward_files(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    mode: u32,
    d: &Downward,
) -> Result<Vec<File>> {
    let mut out = vec![];
    for i in items {
        let data = if let Some(f) = &i.field_ref {
            match f.field_path.as_str() {
                "metadata.labels" => format_map(pod.metadata.labels.as_ref()),
                "metadata.annotations" => format_map(pod.metadata.annotations.as_ref()),
                path => spec::field_ref(pod, path, d).unwrap_or_default(),
            }
        } else if let Some(r) = &i.resource_field_ref {
            let name = r.container_name.as_deref().unwrap_or_default();
            let Some(c) = spec::all_containers(pod).find(|c| c.name == name) else {
                continue;
            };
            spec::resource_field(c, &r.resource, r.divisor.as_ref().map(|q| q.0.as_str()), d)?
        } else {
            continue;
        };
        out.push(File {
            path: i.path.clone(),
            data: data.into_bytes(),
            mode: i.mode.map(|m| m as u32).unwrap_or(mode),
        });
    }
    Ok(out)
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().to_vec()
}

/// A token shaped like the ones TokenRequest issues, with upstream's claims. GAP: the API
/// server has no TokenRequest yet, so the kubelet signs it with a key of its own (HS256);
/// nothing verifies it.
pub fn service_account_token(
    pod: &Pod,
    node: &str,
    audience: Option<&str>,
    seconds: i64,
    now: i64,
    key: &[u8],
) -> String {
    let p = spec::pod_ref(pod);
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into());
    let header = serde_json::json!({"alg": "HS256", "kid": "kindling-kubelet", "typ": "JWT"});
    let claims = serde_json::json!({
        "aud": [audience.unwrap_or(ISSUER)],
        "exp": now + seconds,
        "iat": now,
        "iss": ISSUER,
        "jti": uuid::Uuid::new_v4().to_string(),
        "kubernetes.io": {
            "namespace": p.namespace,
            "node": {"name": node},
            "pod": {"name": p.name, "uid": p.uid},
            "serviceaccount": {"name": sa},
        },
        "nbf": now,
        "sub": format!("system:serviceaccount:{}:{sa}", p.namespace),
    });
    let signing = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = hmac_sha256(key, signing.as_bytes());
    format!("{signing}.{}", b64url(&sig))
}

/// The files of the default service-account volume: token, ca.crt and namespace.
pub fn default_token_files(pod: &Pod, node: &str, f: &Fetched) -> Vec<File> {
    let ns = spec::pod_ref(pod).namespace;
    vec![
        File {
            path: "token".into(),
            data: service_account_token(
                pod,
                node,
                None,
                DEFAULT_TOKEN_SECONDS,
                f.now,
                &f.token_key,
            )
            .into_bytes(),
            mode: DEFAULT_MODE,
        },
        File {
            path: "ca.crt".into(),
            data: f.ca_pem.clone().into_bytes(),
            mode: DEFAULT_MODE,
        },
        File {
            path: "namespace".into(),
            data: ns.as_bytes().to_vec(),
            mode: DEFAULT_MODE,
        },
    ]
}

/// The files of one volume, or None for a volume whose files the kubelet does not write.
pub fn files_of(
    pod: &Pod,
    v: &Volume,
    node: &str,
    d: &Downward,
    f: &Fetched,
) -> Result<Option<Vec<File>>> {
    let mode_of = |m: Option<i32>| m.map(|m| m as u32).unwrap_or(DEFAULT_MODE);
    if let Some(c) = &v.config_map {
        let optional = c.optional == Some(true);
        return match f.config_maps.get(&c.name).and_then(Option::as_ref) {
            Some(cm) => pick(
                &config_map_data(cm),
                c.items.as_ref(),
                mode_of(c.default_mode),
                optional,
                |k| Error::ConfigMapKeyNotFound(k.into()),
            )
            .map(Some),
            None if optional => Ok(Some(vec![])),
            None => Err(Error::ConfigMapNotFound(c.name.clone())),
        };
    }
    if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let optional = s.optional == Some(true);
        return match f.secrets.get(&name).and_then(Option::as_ref) {
            Some(sec) => pick(
                &secret_data(sec),
                s.items.as_ref(),
                mode_of(s.default_mode),
                optional,
                |k| Error::SecretKeyNotFound(k.into()),
            )
            .map(Some),
            None if optional => Ok(Some(vec![])),
            None => Err(Error::SecretNotFound(name)),
        };
    }
    if let Some(dw) = &v.downward_api {
        let items = dw.items.clone().unwrap_or_default();
        return downward_files(pod, &items, mode_of(dw.default_mode), d).map(Some);
    }
    if let Some(pr) = &v.projected {
        let mode = mode_of(pr.default_mode);
        let mut out = vec![];
        for src in pr.sources.iter().flatten() {
            if let Some(c) = &src.config_map {
                let optional = c.optional == Some(true);
                let found = f.config_maps.get(&c.name).and_then(Option::as_ref);
                let data = match found {
                    Some(cm) => Some(config_map_data(cm)),
                    // The root CA ConfigMap may not be published; the node has the same CA.
                    None if c.name == ROOT_CA_CONFIG_MAP => Some(BTreeMap::from([(
                        "ca.crt".to_string(),
                        f.ca_pem.clone().into_bytes(),
                    )])),
                    None => None,
                };
                match data {
                    Some(data) => out.extend(pick(&data, c.items.as_ref(), mode, optional, |k| {
                        Error::ConfigMapKeyNotFound(k.into())
                    })?),
                    None if optional => {}
                    None => return Err(Error::ConfigMapNotFound(c.name.clone())),
                }
            }
            if let Some(s) = &src.secret {
                let optional = s.optional == Some(true);
                match f.secrets.get(&s.name).and_then(Option::as_ref) {
                    Some(sec) => out.extend(pick(
                        &secret_data(sec),
                        s.items.as_ref(),
                        mode,
                        optional,
                        |k| Error::SecretKeyNotFound(k.into()),
                    )?),
                    None if optional => {}
                    None => return Err(Error::SecretNotFound(s.name.clone())),
                }
            }
            if let Some(dw) = &src.downward_api {
                let items = dw.items.clone().unwrap_or_default();
                out.extend(downward_files(pod, &items, mode, d)?);
            }
            if let Some(t) = &src.service_account_token {
                let token = service_account_token(
                    pod,
                    node,
                    t.audience.as_deref(),
                    t.expiration_seconds.unwrap_or(3600),
                    f.now,
                    &f.token_key,
                );
                out.push(File {
                    path: t.path.clone(),
                    data: token.into_bytes(),
                    mode,
                });
            }
        }
        return Ok(Some(out));
    }
    Ok(None)
}

/// Writes `files` into `dir` as upstream's AtomicWriter: a fresh `..<timestamp>` folder, the
/// `..data` link switched to it with one rename, and a link per top-level name into `..data`,
/// so a reader never sees half an update. Unchanged contents are left alone.
pub fn write_atomically(dir: &Path, files: &[File]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let data_link = dir.join("..data");
    let same = files.iter().all(|f| {
        let p = data_link.join(&f.path);
        std::fs::read(&p).is_ok_and(|b| b == f.data)
            && std::fs::metadata(&p).is_ok_and(|m| m.permissions().mode() & 0o7777 == f.mode)
    }) && std::fs::read_link(&data_link).is_ok()
        && count_files(&data_link) == files.len();
    if same {
        return Ok(());
    }
    let now = jiff::Timestamp::now();
    let stamp = format!(
        "..{}.{}",
        now.strftime("%Y_%m_%d_%H_%M_%S"),
        now.subsec_nanosecond().unsigned_abs()
    );
    let ts_dir = dir.join(&stamp);
    std::fs::create_dir_all(&ts_dir)?;
    for f in files {
        let target = ts_dir.join(&f.path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, &f.data)?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(f.mode))?;
    }
    let old = std::fs::read_link(&data_link).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&stamp, &tmp)?;
    std::fs::rename(&tmp, &data_link)?;
    let top: std::collections::BTreeSet<String> = files
        .iter()
        .filter_map(|f| f.path.split('/').next().map(String::from))
        .collect();
    for name in &top {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link)?;
        }
    }
    // Links to names the volume no longer has, and the previous folder, go.
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !top.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    if let Some(old) = old
        && old != Path::new(&stamp)
    {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(())
}

fn count_files(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() { count_files(&p) } else { 1 }
        })
        .sum()
}

/// Writes every file volume of the pod; on failure says which volume, as FailedMount does.
pub fn write_all(
    pod: &Pod,
    node: &str,
    d: &Downward,
    f: &Fetched,
) -> std::result::Result<(), (String, Error)> {
    for v in volumes(pod) {
        let files = files_of(pod, v, node, d, f).map_err(|e| (v.name.clone(), e))?;
        let (Some(files), Some(dir)) = (files, spec::volume_host_path(pod, &v.name)) else {
            continue;
        };
        write_atomically(Path::new(&dir), &files).map_err(|e| (v.name.clone(), e.into()))?;
    }
    if wants_default_token(pod) {
        let dir = spec::default_token_dir(pod);
        write_atomically(Path::new(&dir), &default_token_files(pod, node, f))
            .map_err(|e| (DEFAULT_TOKEN_VOLUME.to_string(), e.into()))?;
    }
    Ok(())
}

/// The pod's /etc/hosts as upstream's kubelet writes it (`managedHostsFileContent`).
pub fn hosts_file(pod: &Pod, pod_ip: &str) -> String {
    let spec = pod.spec.as_ref();
    let p = spec::pod_ref(pod);
    let hostname = spec::pod_hostname(pod);
    let mut s = String::from("# Kubernetes-managed hosts file.\n");
    s.push_str("127.0.0.1\tlocalhost\n");
    s.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    s.push_str("fe00::0\tip6-localnet\n");
    s.push_str("fe00::0\tip6-mcastprefix\n");
    s.push_str("fe00::1\tip6-allnodes\n");
    s.push_str("fe00::2\tip6-allrouters\n");
    if !pod_ip.is_empty() {
        match spec
            .and_then(|s| s.subdomain.as_deref())
            .filter(|s| !s.is_empty())
        {
            Some(sub) => s.push_str(&format!(
                "{pod_ip}\t{hostname}.{sub}.{}.svc.{}\t{hostname}\n",
                p.namespace,
                spec::CLUSTER_DOMAIN
            )),
            None => s.push_str(&format!("{pod_ip}\t{hostname}\n")),
        }
    }
    let aliases = spec.and_then(|s| s.host_aliases.as_ref());
    if let Some(aliases) = aliases.filter(|a| !a.is_empty()) {
        s.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            s.push_str(&format!(
                "{}\t{}\n",
                a.ip,
                a.hostnames.clone().unwrap_or_default().join("\t")
            ));
        }
    }
    s
}

/// Writes the pod's hosts file (not for host-network pods, which see the node's).
pub fn write_hosts(pod: &Pod, pod_ip: &str) -> std::io::Result<()> {
    let Some(path) = spec::hosts_path(pod) else {
        return Ok(());
    };
    let text = hosts_file(pod, pod_ip);
    if std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
        return Ok(());
    }
    if let Some(parent) = Path::new(&path).parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(DEFAULT_MODE))?;
    std::fs::rename(&tmp, &path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1",
                         "labels": {"app": "web", "tier": "front"},
                         "annotations": {"note": "say \"hi\""}},
            "spec": spec,
        }))
        .unwrap()
    }

    const D: Downward = Downward {
        node: "dev-worker",
        host_ip: "172.18.0.3",
        pod_ip: "10.244.1.5",
        allocatable_cpu: 2.0,
        allocatable_memory: 1024.0 * 1024.0 * 1024.0,
        allocatable_storage: 1e11,
    };

    #[test]
    fn the_hosts_file_is_upstreams_with_subdomain_and_aliases() {
        let p = pod(
            json!({"containers": [], "hostname": "h", "subdomain": "sub",
            "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["foo.local", "bar.local"]}]}),
        );
        assert_eq!(
            hosts_file(&p, "10.244.1.5"),
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
             fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n\
             10.244.1.5\th.sub.shop.svc.cluster.local\th\n\
             \n# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n"
        );
        let plain = pod(json!({"containers": []}));
        assert!(
            hosts_file(&plain, "10.244.1.5")
                .ends_with("fe00::2\tip6-allrouters\n10.244.1.5\tweb\n")
        );
    }

    #[test]
    fn downward_api_files_format_maps_like_upstream() {
        let p = pod(
            json!({"containers": [{"name": "c", "resources": {"limits": {"memory": "32Mi"}}}],
            "volumes": [{"name": "info", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}}]}}]}),
        );
        let v = &p.spec.as_ref().unwrap().volumes.as_ref().unwrap()[0];
        let files = files_of(&p, v, "n", &D, &Fetched::default())
            .unwrap()
            .unwrap();
        let text: Vec<_> = files
            .iter()
            .map(|f| format!("{}={}", f.path, String::from_utf8_lossy(&f.data)))
            .collect();
        assert_eq!(
            text,
            [
                "labels=app=\"web\"\ntier=\"front\"",
                "annotations=note=\"say \\\"hi\\\"\"",
                "name=web",
                "mem=32"
            ]
        );
    }

    #[test]
    fn missing_config_maps_and_keys_fail_like_upstream_unless_optional() {
        let p = pod(json!({"containers": [], "volumes": [
            {"name": "a", "configMap": {"name": "cfg"}},
            {"name": "b", "configMap": {"name": "cfg", "items": [{"key": "nope", "path": "x"}]}},
            {"name": "c", "configMap": {"name": "gone", "optional": true}},
            {"name": "d", "secret": {"secretName": "gone"}}]}));
        let mut f = Fetched::default();
        f.config_maps.insert(
            "cfg".into(),
            Some(serde_json::from_value(json!({"data": {"k": "v"}})).unwrap()),
        );
        f.config_maps.insert("gone".into(), None);
        f.secrets.insert("gone".into(), None);
        let vs = p.spec.as_ref().unwrap().volumes.clone().unwrap();
        let r: Vec<String> = vs
            .iter()
            .map(|v| match files_of(&p, v, "n", &D, &f) {
                Ok(files) => format!("{} files", files.unwrap().len()),
                Err(e) => e.to_string(),
            })
            .collect();
        assert_eq!(
            r,
            [
                "1 files",
                "configmap references non-existent config key: nope",
                "0 files",
                "secret \"gone\" not found"
            ]
        );
    }

    #[test]
    fn tokens_are_jwt_shaped_with_upstreams_claims() {
        let p = pod(json!({"containers": [], "serviceAccountName": "builder"}));
        let t = service_account_token(&p, "dev-worker", None, 3607, 1_700_000_000, b"k");
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts[1])
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["sub"], "system:serviceaccount:shop:builder");
        assert_eq!(claims["exp"], 1_700_003_607);
        assert_eq!(claims["kubernetes.io"]["pod"]["name"], "web");
    }

    #[test]
    fn atomic_writes_switch_the_data_link_and_drop_old_names() {
        let dir = std::env::temp_dir().join(format!("kindling-aw-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let file = |p: &str, d: &str| File {
            path: p.into(),
            data: d.into(),
            mode: 0o644,
        };
        write_atomically(&dir, &[file("a", "1"), file("b", "2")]).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
        let first = std::fs::read_link(dir.join("..data")).unwrap();
        write_atomically(&dir, &[file("a", "1"), file("b", "2")]).unwrap();
        assert_eq!(std::fs::read_link(dir.join("..data")).unwrap(), first);
        write_atomically(&dir, &[file("a", "3")]).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "3");
        assert!(std::fs::symlink_metadata(dir.join("b")).is_err());
        assert!(!dir.join(&first).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
