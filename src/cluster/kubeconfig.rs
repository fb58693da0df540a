//! Kubeconfig files: rendering a cluster's admin config and merging it into the user's file
//! (the first `$KUBECONFIG` entry, else `~/.kube/config`) under a lock, keeping everything else.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not read kubeconfig {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("kubeconfig {path} is not valid YAML: {message}; fix or move it, then retry")]
    Parse { path: PathBuf, message: String },
    #[error("could not write kubeconfig {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "kubeconfig {path} is locked by {lock}; remove the lock file if no other kindling is running"
    )]
    Locked { path: PathBuf, lock: PathBuf },
    #[error("kubeconfig has no entry for {0}")]
    Missing(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a kubeconfig entry for one cluster holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Cluster, user and context name (`kindling-<cluster>`).
    pub name: String,
    pub server: String,
    pub ca_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

impl Entry {
    fn cluster(&self) -> Value {
        json!({"name": self.name, "cluster": {
            "server": self.server,
            "certificate-authority-data": B64.encode(&self.ca_pem),
        }})
    }
    fn user(&self) -> Value {
        json!({"name": self.name, "user": {
            "client-certificate-data": B64.encode(&self.client_cert_pem),
            "client-key-data": B64.encode(&self.client_key_pem),
        }})
    }
    fn context(&self) -> Value {
        json!({"name": self.name, "context": {"cluster": self.name, "user": self.name}})
    }

    /// A complete kubeconfig with just this entry, current-context set to it.
    pub fn render(&self) -> String {
        let mut doc = empty();
        upsert(&mut doc, self);
        to_yaml(&doc)
    }

    /// The entry named `name` in a kubeconfig document.
    pub fn from_yaml(text: &str, name: &str) -> Result<Self> {
        let doc: Value = serde_saphyr::from_str(text).map_err(|e| Error::Parse {
            path: PathBuf::from("<kubeconfig>"),
            message: e.to_string(),
        })?;
        let find = |list: &str, field: &str| -> Option<Value> {
            doc.get(list)?
                .as_array()?
                .iter()
                .find(|e| e.get("name").and_then(Value::as_str) == Some(name))?
                .get(field)
                .cloned()
        };
        let missing = || Error::Missing(name.to_string());
        let cluster = find("clusters", "cluster").ok_or_else(missing)?;
        let user = find("users", "user").ok_or_else(missing)?;
        let decode = |v: &Value, k: &str| -> Result<String> {
            let s = v.get(k).and_then(Value::as_str).ok_or_else(missing)?;
            let bytes = B64.decode(s).map_err(|_| missing())?;
            String::from_utf8(bytes).map_err(|_| missing())
        };
        Ok(Entry {
            name: name.to_string(),
            server: cluster
                .get("server")
                .and_then(Value::as_str)
                .ok_or_else(missing)?
                .to_string(),
            ca_pem: decode(&cluster, "certificate-authority-data")?,
            client_cert_pem: decode(&user, "client-certificate-data")?,
            client_key_pem: decode(&user, "client-key-data")?,
        })
    }
}

/// A Kubernetes client for this entry.
pub async fn client(entry: &Entry) -> Result<kube::Client, kube::Error> {
    let kc = kube::config::Kubeconfig::from_yaml(&entry.render())
        .map_err(kube::Error::InferKubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(kube::Error::InferKubeconfig)?;
    kube::Client::try_from(config)
}

fn empty() -> Value {
    json!({"apiVersion": "v1", "kind": "Config", "preferences": {},
           "clusters": [], "users": [], "contexts": [], "current-context": ""})
}

fn to_yaml(doc: &Value) -> String {
    serde_saphyr::to_string(doc).unwrap_or_default()
}

fn list_mut<'a>(doc: &'a mut Value, key: &str) -> &'a mut Vec<Value> {
    if !doc.get(key).is_some_and(Value::is_array) {
        doc[key] = json!([]);
    }
    doc[key].as_array_mut().expect("just made an array")
}

fn replace_named(list: &mut Vec<Value>, item: Value) {
    let name = item["name"].clone();
    match list.iter_mut().find(|e| e["name"] == name) {
        Some(slot) => *slot = item,
        None => list.push(item),
    }
}

fn upsert(doc: &mut Value, entry: &Entry) {
    replace_named(list_mut(doc, "clusters"), entry.cluster());
    replace_named(list_mut(doc, "users"), entry.user());
    replace_named(list_mut(doc, "contexts"), entry.context());
    doc["current-context"] = json!(entry.name);
}

fn remove(doc: &mut Value, name: &str) -> bool {
    let mut changed = false;
    for key in ["clusters", "users", "contexts"] {
        let list = list_mut(doc, key);
        let before = list.len();
        list.retain(|e| e["name"] != name);
        changed |= list.len() != before;
    }
    if doc["current-context"] == name {
        doc["current-context"] = json!("");
        changed = true;
    }
    changed
}

/// The file kubectl reads first: the first `$KUBECONFIG` entry, else `~/.kube/config`.
pub fn default_path() -> PathBuf {
    if let Some(first) = std::env::var_os("KUBECONFIG")
        .and_then(|v| std::env::split_paths(&v).find(|p| !p.as_os_str().is_empty()))
    {
        return first;
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".kube").join("config")
}

/// Holds `<path>.lock` (created exclusively) while a kubeconfig is rewritten, as kubectl does.
struct Lock(PathBuf);

impl Lock {
    fn take(path: &Path) -> Result<Self> {
        let lock = PathBuf::from(format!("{}.lock", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| Error::Write {
                path: path.into(),
                source,
            })?;
        }
        for _ in 0..100 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&lock)
            {
                Ok(_) => return Ok(Lock(lock)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(source) => {
                    return Err(Error::Write { path: lock, source });
                }
            }
        }
        Err(Error::Locked {
            path: path.into(),
            lock,
        })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn read_doc(path: &Path) -> Result<Value> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Ok(empty()),
        Ok(text) => {
            let doc: Value = serde_saphyr::from_str(&text).map_err(|e| Error::Parse {
                path: path.into(),
                message: e.to_string().lines().next().unwrap_or_default().to_string(),
            })?;
            Ok(if doc.is_object() { doc } else { empty() })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(empty()),
        Err(source) => Err(Error::Read {
            path: path.into(),
            source,
        }),
    }
}

fn write_doc(path: &Path, doc: &Value) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = PathBuf::from(format!("{}.kindling-tmp", path.display()));
    let err = |source| Error::Write {
        path: path.into(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    std::io::Write::write_all(&mut f, to_yaml(doc).as_bytes()).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Add or replace `entry` in the kubeconfig at `path` and make it the current context.
pub fn merge(path: &Path, entry: &Entry) -> Result<()> {
    let _lock = Lock::take(path)?;
    let mut doc = read_doc(path)?;
    upsert(&mut doc, entry);
    write_doc(path, &doc)
}

/// Remove the cluster, user and context named `name`; a missing file or entry is fine.
pub fn remove_entry(path: &Path, name: &str) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let _lock = Lock::take(path)?;
    let mut doc = read_doc(path)?;
    if remove(&mut doc, name) {
        write_doc(path, &doc)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> Entry {
        Entry {
            name: name.into(),
            server: "https://127.0.0.1:40000".into(),
            ca_pem: "CA".into(),
            client_cert_pem: "CERT".into(),
            client_key_pem: "KEY".into(),
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kindling-kc-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("config")
    }

    #[test]
    fn merging_keeps_other_clusters_and_switches_context() {
        let path = tmp("keep");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster:\n    server: https://other:6443\n    insecure-skip-tls-verify: true\nusers:\n- name: other\n  user:\n    token: abc\ncontexts:\n- name: other\n  context:\n    cluster: other\n    user: other\ncurrent-context: other\n",
        )
        .unwrap();
        merge(&path, &entry("kindling-a")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(doc["current-context"], "kindling-a");
        assert_eq!(doc["clusters"].as_array().unwrap().len(), 2);
        assert_eq!(doc["users"][0]["user"]["token"], "abc");
        assert_eq!(
            Entry::from_yaml(&text, "kindling-a").unwrap(),
            entry("kindling-a")
        );
    }

    #[test]
    fn merging_twice_replaces_rather_than_duplicates() {
        let path = tmp("twice");
        merge(&path, &entry("kindling-a")).unwrap();
        let mut changed = entry("kindling-a");
        changed.server = "https://127.0.0.1:40001".into();
        merge(&path, &changed).unwrap();
        let doc: Value = serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(doc["clusters"].as_array().unwrap().len(), 1);
        assert_eq!(
            doc["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:40001"
        );
    }

    #[test]
    fn removing_an_entry_leaves_the_others_and_clears_current_context() {
        let path = tmp("remove");
        merge(&path, &entry("kindling-a")).unwrap();
        merge(&path, &entry("kindling-b")).unwrap();
        remove_entry(&path, "kindling-b").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(doc["current-context"], "");
        assert!(Entry::from_yaml(&text, "kindling-a").is_ok());
        assert!(Entry::from_yaml(&text, "kindling-b").is_err());
        assert!(!PathBuf::from(format!("{}.lock", path.display())).exists());
    }

    #[test]
    fn a_broken_kubeconfig_is_reported_not_overwritten() {
        let path = tmp("broken");
        std::fs::write(&path, "clusters: [unclosed\n").unwrap();
        let e = merge(&path, &entry("kindling-a")).unwrap_err().to_string();
        assert!(e.contains("is not valid YAML"), "{e}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "clusters: [unclosed\n"
        );
    }
}
