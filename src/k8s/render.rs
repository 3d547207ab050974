//! The Kubernetes objects of a sharded run, as JSON trees (written out as
//! YAML by [`super::yaml`]): the scenario's ConfigMap, the Secret of the
//! files it names, a ReadWriteMany
//! volume for the results, the headless Service Prometheus finds the shards
//! by, the Indexed Job of shards and the merge Job that gates on them.

use super::files::FILES_DIR;
use super::{METRICS_PORT, RunSpec};
use serde_json::{Value, json};

/// The labels every object of the run carries.
fn labels(spec: &RunSpec, role: &str) -> Value {
    json!({
        "app.kubernetes.io/name": "squall",
        "app.kubernetes.io/component": role,
        "squall.dev/run": spec.run,
    })
}

/// `metadata` of an object of the run.
fn metadata(spec: &RunSpec, name: &str, role: &str) -> Value {
    let mut m = json!({"name": name, "labels": labels(spec, role)});
    if let Some(ns) = &spec.namespace {
        m["namespace"] = json!(ns);
    }
    m
}

/// The ConfigMap that holds the scenario file, mounted at `/scenario`.
pub fn config_map(spec: &RunSpec) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(spec, &spec.config_map(), "scenario"),
        "data": {spec.file_name.clone(): spec.scenario_text},
    })
}

/// The Secret of the files the scenario names (keys among them), mounted
/// at [`FILES_DIR`].
pub fn files_secret(spec: &RunSpec) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(spec, &spec.files_secret(), "files"),
        "type": "Opaque",
        "data": spec.files.data,
    })
}

/// The results volume: every shard writes to it and the merge Job reads
/// them all, from pods on different nodes, so it must be ReadWriteMany (an
/// `emptyDir` lives and dies with one pod).
pub fn volume_claim(spec: &RunSpec) -> Value {
    let mut s = json!({
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "1Gi"}},
    });
    if let Some(class) = &spec.storage_class {
        s["storageClassName"] = json!(class);
    }
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(spec, &spec.claim(), "results"),
        "spec": s,
    })
}

/// The Prometheus annotations of the conventional `kubernetes_sd` scrape
/// configs (role `pod` and role `endpoints`).
fn scrape_annotations() -> Value {
    json!({
        "prometheus.io/scrape": "true",
        "prometheus.io/port": METRICS_PORT.to_string(),
        "prometheus.io/path": "/metrics",
    })
}

/// A headless Service over the shards' pods: a stable DNS name per shard
/// (`<job>-<index>.<service>`) and the endpoints a Prometheus with role
/// `endpoints` scrapes.
pub fn service(spec: &RunSpec) -> Value {
    let mut metadata = metadata(spec, &spec.service(), "shard");
    metadata["annotations"] = scrape_annotations();
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "clusterIP": "None",
            "selector": {"squall.dev/run": spec.run, "app.kubernetes.io/component": "shard"},
            "ports": [{"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"}],
        },
    })
}

/// The pod-level security every pod of the run gets: squall needs no
/// privilege, and the image's user (10001) owns what it writes on the volume.
fn pod_security(spec: &RunSpec) -> Value {
    let mut s = json!({
        "runAsNonRoot": true,
        "runAsUser": super::UID,
        "runAsGroup": super::UID,
        "fsGroup": super::UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    });
    if spec.wide_ports {
        // A namespaced, "safe" sysctl: more source ports towards one remote
        // relay than the default 28,000.
        s["sysctls"] = json!([{"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"}]);
    }
    s
}

/// The container-level security: nothing to escalate, nothing to add.
fn container_security() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "capabilities": {"drop": ["ALL"]},
    })
}

/// The volumes of a pod: the scenario read-only, the results shared, and
/// for a shard (`files`) the scenario's files read-only.
fn volumes(spec: &RunSpec, files: bool) -> Value {
    let mut v = json!([
        {"name": "scenario", "configMap": {"name": spec.config_map()}},
        {"name": "results", "persistentVolumeClaim": {"claimName": spec.claim()}},
        {"name": "tmp", "emptyDir": {}},
    ]);
    if files && !spec.files.is_empty() {
        // Readable by the image's group (the pod's fsGroup) only: keys.
        v.as_array_mut().expect("a list").push(
            json!({"name": "files", "secret": {"secretName": spec.files_secret(), "defaultMode": 0o440}}),
        );
    }
    v
}

/// Where [`volumes`] are mounted.
fn mounts(spec: &RunSpec, files: bool) -> Value {
    let mut m = json!([
        {"name": "scenario", "mountPath": "/scenario", "readOnly": true},
        {"name": "results", "mountPath": "/results"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]);
    if files && !spec.files.is_empty() {
        m.as_array_mut()
            .expect("a list")
            .push(json!({"name": "files", "mountPath": FILES_DIR, "readOnly": true}));
    }
    m
}

/// The Indexed Job: pod `i` runs shard `i + 1` of N, all from one
/// `--start-at`.
pub fn shards_job(spec: &RunSpec) -> Value {
    let mut template_meta = json!({"labels": labels(spec, "shard")});
    let mut annotations = scrape_annotations();
    // Kubernetes has no per-pod open-file limit: squall raises its soft
    // limit to the hard one the runtime gives, which must be at least this.
    annotations["squall.dev/open-files"] = json!(spec.resources.open_files.to_string());
    template_meta["annotations"] = annotations;
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(spec, &spec.shards_job(), "shard"),
        "spec": {
            "completionMode": "Indexed",
            "completions": spec.shards,
            "parallelism": spec.shards,
            // A shard retried after the start would only refuse (exit 2):
            // a failed shard fails the run, and merge says so.
            "backoffLimit": 0,
            "activeDeadlineSeconds": spec.shard_deadline_s,
            "ttlSecondsAfterFinished": 86_400,
            "template": {
                "metadata": template_meta,
                "spec": {
                    "restartPolicy": "Never",
                    "subdomain": spec.service(),
                    "securityContext": pod_security(spec),
                    "terminationGracePeriodSeconds": 30,
                    "containers": [{
                        "name": "shard",
                        "image": spec.image,
                        "imagePullPolicy": "IfNotPresent",
                        "args": spec.shard_args(),
                        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
                        "resources": spec.resources.to_json(),
                        "securityContext": container_security(),
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                        "volumeMounts": mounts(spec, true),
                    }],
                    "volumes": volumes(spec, true),
                },
            },
        },
    })
}

/// The merge Job: waits for every shard's results, merges them, gates
/// (`squall merge` exits 3 on a breach), writes JUnit beside them.
pub fn merge_job(spec: &RunSpec) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(spec, &spec.merge_job(), "merge"),
        "spec": {
            "completions": 1,
            "parallelism": 1,
            // Its exit code is the verdict: not something to retry.
            "backoffLimit": 0,
            "activeDeadlineSeconds": spec.merge_deadline_s,
            "ttlSecondsAfterFinished": 86_400,
            "template": {
                "metadata": {"labels": labels(spec, "merge")},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": pod_security(&RunSpec { wide_ports: false, ..spec.clone() }),
                    "containers": [{
                        "name": "merge",
                        "image": spec.image,
                        "imagePullPolicy": "IfNotPresent",
                        "args": spec.merge_args(),
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "128Mi"},
                            "limits": {"memory": "512Mi"},
                        },
                        "securityContext": container_security(),
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                        "volumeMounts": mounts(spec, false),
                    }],
                    "volumes": volumes(spec, false),
                },
            },
        },
    })
}
