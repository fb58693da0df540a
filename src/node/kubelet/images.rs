//! Image references and pull policies: names normalised as containerd does, and what the
//! kubelet says when a node lacks an image (nodes have no registry; images are loaded).

/// The full reference containerd stores an image under: `nginx` → `docker.io/library/nginx:latest`,
/// `kindling/whoami` → `docker.io/kindling/whoami:latest`; digests and explicit registries kept.
pub fn normalize(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    // A first component with a dot or colon, or `localhost`, is a registry (docker's rule).
    let mut full = match name.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => name.to_string(),
        Some(_) => format!("docker.io/{name}"),
        None => format!("docker.io/library/{name}"),
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if digest.is_none() && !last.contains(':') {
        full.push_str(":latest");
    }
    match digest {
        Some(d) => format!("{full}@{d}"),
        None => full,
    }
}

/// The pull policy Kubernetes defaults to: Always for `:latest` or no tag, else IfNotPresent.
pub fn effective_policy(image: &str, policy: Option<&str>) -> PullPolicy {
    match policy {
        Some("Never") => PullPolicy::Never,
        Some("Always") => PullPolicy::Always,
        Some("IfNotPresent") => PullPolicy::IfNotPresent,
        _ => {
            let n = normalize(image);
            if !n.contains('@') && n.ends_with(":latest") {
                PullPolicy::Always
            } else {
                PullPolicy::IfNotPresent
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// Why a container can't start for want of its image: a waiting reason and its message.
pub fn missing_image(image: &str, policy: PullPolicy, node: &str) -> (&'static str, String) {
    let hint = format!("run `kindling load docker-image {image}` to load it into the cluster");
    match policy {
        PullPolicy::Never => (
            "ErrImageNeverPull",
            format!("Container image \"{image}\" is not present with pull policy of Never: {hint}"),
        ),
        _ => (
            "ErrImagePull",
            format!(
                "failed to pull image \"{image}\": node {node} has no registry and the image is not present: {hint}"
            ),
        ),
    }
}

/// The waiting message while the kubelet backs off from a missing image.
pub fn pull_backoff_message(image: &str) -> String {
    format!(
        "Back-off pulling image \"{image}\": run `kindling load docker-image {image}` to load it into the cluster"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_normalised_like_containerd_does() {
        assert_eq!(normalize("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(normalize("nginx:1.25"), "docker.io/library/nginx:1.25");
        assert_eq!(
            normalize("kindling/whoami"),
            "docker.io/kindling/whoami:latest"
        );
        assert_eq!(
            normalize("docker.io/kindling/pause:3.10"),
            "docker.io/kindling/pause:3.10"
        );
        assert_eq!(normalize("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(
            normalize("registry.local/team/app:v1"),
            "registry.local/team/app:v1"
        );
        assert_eq!(
            normalize("busybox@sha256:abc"),
            "docker.io/library/busybox@sha256:abc"
        );
    }

    #[test]
    fn latest_images_default_to_always_and_tagged_ones_to_if_not_present() {
        assert_eq!(effective_policy("nginx", None), PullPolicy::Always);
        assert_eq!(effective_policy("nginx:latest", None), PullPolicy::Always);
        assert_eq!(
            effective_policy("nginx:1.25", None),
            PullPolicy::IfNotPresent
        );
        assert_eq!(effective_policy("nginx", Some("Never")), PullPolicy::Never);
    }

    #[test]
    fn a_missing_image_tells_the_user_how_to_load_it() {
        let (reason, msg) = missing_image("app:dev", PullPolicy::Never, "w1");
        assert_eq!(reason, "ErrImageNeverPull");
        assert!(msg.contains("kindling load docker-image app:dev"), "{msg}");
        let (reason, msg) = missing_image("app:dev", PullPolicy::IfNotPresent, "w1");
        assert_eq!(reason, "ErrImagePull");
        assert!(msg.contains("kindling load docker-image app:dev"), "{msg}");
        assert!(pull_backoff_message("app:dev").starts_with("Back-off pulling image \"app:dev\""));
    }
}
