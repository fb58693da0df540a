//! The `flannel` CNI plugin (flannel-io/cni-plugin) and the `cbr0` network list flanneld
//! installs: the plugin reads `/run/flannel/subnet.env` and delegates to `bridge` (cni0) with
//! `host-local` IPAM, keeping the delegate config so DEL undoes exactly what ADD did.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use serde_json::{Value, json};

use super::subnet::SubnetEnv;
use super::{CNI_DATA_DIR, SUBNET_ENV_PATH};

/// The network list, byte for byte as upstream's `kube-flannel.yml` installs it.
pub const CONFLIST: &str = r#"{
  "name": "cbr0",
  "cniVersion": "0.3.1",
  "plugins": [
    {
      "type": "flannel",
      "delegate": {
        "hairpinMode": true,
        "isDefaultGateway": true
      }
    },
    {
      "type": "portmap",
      "capabilities": {
        "portMappings": true
      }
    }
  ]
}
"#;

/// CNI versions this plugin accepts, as upstream's plugin lists them.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"];

/// CNI's well-known error codes (spec "Error" section).
const ERR_INCOMPATIBLE_VERSION: u32 = 1;
const ERR_INVALID_ENV: u32 = 4;
const ERR_DECODING: u32 = 6;
const ERR_INVALID_CONFIG: u32 = 7;
const ERR_TRY_AGAIN_LATER: u32 = 11;
/// Plugin-specific codes start at 100.
const ERR_DELEGATE: u32 = 100;

/// A CNI error, printed as `{"cniVersion","code","msg"}` on stdout.
#[derive(Debug, PartialEq)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
}

fn err(code: u32, msg: impl Into<String>) -> CniError {
    CniError {
        code,
        msg: msg.into(),
    }
}

/// The config handed to the delegate, built the way flannel-io/cni-plugin builds it: keys the
/// user set in `delegate` win; flannel fills in the rest from subnet.env.
pub fn delegate_config(netconf: &Value, env: &SubnetEnv) -> Value {
    let mut d = netconf
        .get("delegate")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(name) = netconf.get("name") {
        d.insert("name".into(), name.clone());
    }
    d.entry("type").or_insert_with(|| json!("bridge"));
    // If flanneld masquerades (--ip-masq), the bridge must not do it a second time.
    d.entry("ipMasq").or_insert_with(|| json!(!env.ip_masq));
    d.entry("mtu").or_insert_with(|| json!(env.mtu));
    if d.get("type") == Some(&json!("bridge")) {
        d.entry("isGateway").or_insert_with(|| json!(true));
    }
    if let Some(v) = netconf.get("cniVersion") {
        d.insert("cniVersion".into(), v.clone());
    }
    let mut ipam = netconf
        .get("ipam")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    ipam.entry("type").or_insert_with(|| json!("host-local"));
    ipam.insert(
        "ranges".into(),
        json!([[{"subnet": env.subnet.network().to_string()}]]),
    );
    ipam.entry("routes")
        .or_insert_with(|| json!([{"dst": env.network.network().to_string()}]));
    d.insert("ipam".into(), Value::Object(ipam));
    Value::Object(d)
}

/// `{"cniVersion":..., "supportedVersions": [...]}` for `CNI_COMMAND=VERSION`.
pub fn version_result() -> Value {
    json!({"cniVersion": "1.0.0", "supportedVersions": SUPPORTED_VERSIONS})
}

/// The error as CNI prints it.
pub fn error_json(version: &str, e: &CniError) -> Value {
    json!({"cniVersion": version, "code": e.code, "msg": e.msg})
}

/// Where the plugin named `kind` lives, searching `CNI_PATH` like libcni.
fn find_plugin(cni_path: &str, kind: &str) -> Option<PathBuf> {
    cni_path
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(kind))
        .find(|p| p.is_file())
}

/// Run the delegate with its config on stdin and the caller's CNI_* environment; returns its
/// stdout (the result, or its own error JSON).
fn exec_delegate(command: &str, conf: &Value) -> Result<String, CniError> {
    let kind = conf["type"].as_str().unwrap_or("bridge");
    let cni_path =
        std::env::var("CNI_PATH").map_err(|_| err(ERR_INVALID_ENV, "CNI_PATH is not set"))?;
    let plugin = find_plugin(&cni_path, kind).ok_or_else(|| {
        err(
            ERR_DELEGATE,
            format!("failed to find plugin {kind:?} in path [{cni_path}]"),
        )
    })?;
    let mut child = Command::new(&plugin)
        .env("CNI_COMMAND", command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            err(
                ERR_DELEGATE,
                format!("could not run {}: {e}", plugin.display()),
            )
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(conf.to_string().as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| err(ERR_DELEGATE, format!("{kind} did not finish: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    // Pass the delegate's own CNI error through, as libcni's invoke does.
    let (code, msg) = match serde_json::from_str::<Value>(&stdout) {
        Ok(v) => (
            v["code"].as_u64().unwrap_or(ERR_DELEGATE as u64) as u32,
            v["msg"].as_str().unwrap_or(&stdout).to_string(),
        ),
        Err(_) => (ERR_DELEGATE, format!("{kind} failed: {}", stdout.trim())),
    };
    Err(err(code, msg))
}

fn data_dir(netconf: &Value) -> PathBuf {
    PathBuf::from(netconf["dataDir"].as_str().unwrap_or(CNI_DATA_DIR))
}

fn container_id() -> Result<String, CniError> {
    std::env::var("CNI_CONTAINERID")
        .ok()
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| err(ERR_INVALID_ENV, "CNI_CONTAINERID is not set or invalid"))
}

fn cmd_add(netconf: &Value) -> Result<String, CniError> {
    let path = netconf["subnetFile"].as_str().unwrap_or(SUBNET_ENV_PATH);
    let text = std::fs::read_to_string(path).map_err(|e| {
        err(
            ERR_TRY_AGAIN_LATER,
            format!("failed to load flannel 'subnet.env' file: open {path}: {e}. check the flannel pod (here: flanneld) is running"),
        )
    })?;
    let env = SubnetEnv::parse(&text).map_err(|e| err(ERR_INVALID_CONFIG, e.to_string()))?;
    let delegate = delegate_config(netconf, &env);
    let id = container_id()?;
    let dir = data_dir(netconf);
    std::fs::create_dir_all(&dir)
        .and_then(|_| std::fs::write(dir.join(&id), delegate.to_string()))
        .map_err(|e| {
            err(
                ERR_DELEGATE,
                format!("could not save delegate config in {}: {e}", dir.display()),
            )
        })?;
    exec_delegate("ADD", &delegate)
}

fn cmd_del(netconf: &Value) -> Result<String, CniError> {
    let id = container_id()?;
    let file = data_dir(netconf).join(&id);
    let saved = match std::fs::read_to_string(&file) {
        Ok(s) => s,
        // Nothing was added (or DEL already ran): DEL must succeed anyway.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => {
            return Err(err(
                ERR_DELEGATE,
                format!("could not read {}: {e}", file.display()),
            ));
        }
    };
    let delegate: Value = serde_json::from_str(&saved)
        .map_err(|e| err(ERR_DECODING, format!("{}: {e}", file.display())))?;
    exec_delegate("DEL", &delegate)?;
    let _ = std::fs::remove_file(&file);
    Ok(String::new())
}

fn dispatch(command: &str, stdin: &str) -> Result<String, CniError> {
    if command == "VERSION" {
        return Ok(version_result().to_string());
    }
    let netconf: Value = serde_json::from_str(stdin)
        .map_err(|e| err(ERR_DECODING, format!("failed to load netconf: {e}")))?;
    let version = netconf["cniVersion"].as_str().unwrap_or("0.1.0");
    if !SUPPORTED_VERSIONS.contains(&version) {
        return Err(err(
            ERR_INCOMPATIBLE_VERSION,
            format!(
                "incompatible CNI versions; config is {version:?}, plugin supports {SUPPORTED_VERSIONS:?}"
            ),
        ));
    }
    match command {
        "ADD" => cmd_add(&netconf),
        "DEL" => cmd_del(&netconf),
        // Upstream's plugin does not check anything either.
        "CHECK" => Ok(String::new()),
        other => Err(err(
            ERR_INVALID_ENV,
            format!("unknown CNI_COMMAND: {other}"),
        )),
    }
}

/// Entry point when the binary runs as `/usr/lib/cni/flannel`.
pub fn main() -> ExitCode {
    let command = std::env::var("CNI_COMMAND").unwrap_or_default();
    let mut stdin = String::new();
    let _ = std::io::stdin().read_to_string(&mut stdin);
    let version = serde_json::from_str::<Value>(&stdin)
        .ok()
        .and_then(|v| v["cniVersion"].as_str().map(String::from))
        .unwrap_or_else(|| "0.3.1".into());
    let result = if command.is_empty() {
        Err(err(
            ERR_INVALID_ENV,
            "CNI_COMMAND is not set (this is the flannel CNI plugin)",
        ))
    } else {
        dispatch(&command, &stdin)
    };
    match result {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{}", error_json(&version, &e));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> SubnetEnv {
        SubnetEnv::parse(
            "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
        )
        .unwrap()
    }

    fn first_plugin() -> Value {
        let list: Value = serde_json::from_str(CONFLIST).unwrap();
        let mut p = list["plugins"][0].clone();
        // libcni injects the list's name and version into each plugin's config.
        p["name"] = list["name"].clone();
        p["cniVersion"] = list["cniVersion"].clone();
        p
    }

    #[test]
    fn the_conflist_is_cbr0_flannel_then_portmap() {
        let list: Value = serde_json::from_str(CONFLIST).unwrap();
        assert_eq!(list["name"], "cbr0");
        assert_eq!(list["cniVersion"], "0.3.1");
        assert_eq!(list["plugins"][0]["type"], "flannel");
        assert_eq!(
            list["plugins"][0]["delegate"],
            json!({"hairpinMode": true, "isDefaultGateway": true})
        );
        assert_eq!(list["plugins"][1]["type"], "portmap");
        assert_eq!(
            list["plugins"][1]["capabilities"],
            json!({"portMappings": true})
        );
    }

    #[test]
    fn the_delegate_is_a_bridge_with_host_local_ipam_like_upstream() {
        assert_eq!(
            delegate_config(&first_plugin(), &env()),
            json!({
                "cniVersion": "0.3.1",
                "name": "cbr0",
                "type": "bridge",
                "hairpinMode": true,
                "isDefaultGateway": true,
                "ipMasq": false,
                "isGateway": true,
                "mtu": 1450,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": "10.244.1.0/24"}]],
                    "routes": [{"dst": "10.244.0.0/16"}]
                }
            })
        );
    }

    #[test]
    fn the_bridge_masquerades_only_when_flanneld_does_not() {
        let mut e = env();
        e.ip_masq = false;
        assert_eq!(delegate_config(&first_plugin(), &e)["ipMasq"], true);
    }

    #[test]
    fn delegate_keys_the_user_set_win() {
        let mut conf = first_plugin();
        conf["delegate"]["mtu"] = json!(1400);
        conf["delegate"]["isGateway"] = json!(false);
        let d = delegate_config(&conf, &env());
        assert_eq!(d["mtu"], 1400);
        assert_eq!(d["isGateway"], false);
    }

    #[test]
    fn version_lists_what_upstream_supports_and_bad_input_is_a_cni_error() {
        assert_eq!(
            dispatch("VERSION", "").unwrap(),
            version_result().to_string()
        );
        let e = dispatch("ADD", "not json").unwrap_err();
        assert_eq!(e.code, ERR_DECODING);
        let e = dispatch(
            "ADD",
            r#"{"cniVersion":"9.9.9","name":"x","type":"flannel"}"#,
        )
        .unwrap_err();
        assert_eq!(e.code, ERR_INCOMPATIBLE_VERSION);
        assert_eq!(
            error_json("0.3.1", &err(7, "bad")),
            json!({"cniVersion": "0.3.1", "code": 7, "msg": "bad"})
        );
    }

    #[test]
    fn plugins_are_found_along_cni_path() {
        let dir = std::env::temp_dir().join(format!("kindling-cni-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("bridge"), "").unwrap();
        let path = format!("/nonexistent:{}", dir.display());
        assert_eq!(find_plugin(&path, "bridge"), Some(dir.join("bridge")));
        assert_eq!(find_plugin(&path, "ptp"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
