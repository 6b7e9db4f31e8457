//! The container image, run: `make image-test` builds it (static binary, `buildah bud` of the
//! Dockerfile `FROM scratch`) and runs these tests with `SUPPORT_IMAGE` naming it. Each runs the image
//! with `buildah run --isolation chroot` (no daemon).
//!
//! Ignored by a plain `cargo test` (no image there); `make image-test`, which CI runs, runs them with
//! `--ignored`, and then a missing image or buildah is a failure.

mod tools;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use test_apiserver::ApiServer;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The image `make image-test` built, and buildah's flags to find it.
#[derive(Clone)]
struct Image {
    name: String,
    buildah: Vec<String>,
}

fn image() -> Image {
    let name = std::env::var("SUPPORT_IMAGE").expect("SUPPORT_IMAGE names the image to test: run `make image-test`");
    assert!(tools::on_path("buildah").is_some(), "buildah is not on PATH (scripts/install-tools.sh installs it)");
    let buildah =
        std::env::var("SUPPORT_BUILDAH_FLAGS").unwrap_or_default().split_whitespace().map(str::to_owned).collect();
    Image { name, buildah }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Image {
    fn buildah(&self, args: &[&str]) -> std::process::Output {
        Command::new("buildah").args(&self.buildah).args(args).output().expect("buildah runs")
    }

    /// `buildah run --isolation chroot` of a fresh container of the image, with `volumes`
    /// (host:container, read-only), `env` and `argv`; the container is removed afterwards.
    fn run(&self, volumes: &[(&Path, &str)], env: &[(&str, &str)], argv: &[&str]) -> Run {
        let from = self.buildah(&["from", "--pull-never", &self.name]);
        assert!(from.status.success(), "buildah from: {}", String::from_utf8_lossy(&from.stderr));
        let container = String::from_utf8_lossy(&from.stdout).trim().to_owned();
        let mut args: Vec<String> =
            vec!["run".into(), "--isolation".into(), "chroot".into(), "--network".into(), "host".into()];
        for (host, inside) in volumes {
            args.extend(["--volume".into(), format!("{}:{inside}:ro", host.display())]);
        }
        for (k, v) in env {
            args.extend(["--env".into(), format!("{k}={v}")]);
        }
        args.push(container.clone());
        args.push("--".into());
        args.extend(argv.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.buildah(&refs);
        let _ = self.buildah(&["rm", &container]);
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Every regular file of the image's root filesystem (`buildah mount` of a fresh container).
    fn files(&self) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let t = e.file_type().unwrap();
                if t.is_dir() {
                    walk(&e.path(), base, out);
                } else {
                    out.push(e.path().strip_prefix(base).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        let from = self.buildah(&["from", "--pull-never", &self.name]);
        let container = String::from_utf8_lossy(&from.stdout).trim().to_owned();
        let mount = self.buildah(&["mount", &container]);
        assert!(mount.status.success(), "buildah mount: {}", String::from_utf8_lossy(&mount.stderr));
        let rootfs = PathBuf::from(String::from_utf8_lossy(&mount.stdout).trim());
        let mut files = Vec::new();
        walk(&rootfs, &rootfs, &mut files);
        let _ = self.buildah(&["umount", &container]);
        let _ = self.buildah(&["rm", &container]);
        files.sort();
        files
    }

    /// The image's config (`buildah inspect`).
    fn config(&self) -> Value {
        let out = self.buildah(&["inspect", "--type", "image", &self.name]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("buildah inspect JSON")
    }
}

#[test]
#[ignore = "needs the image: make image-test"]
fn the_image_is_one_static_binary_and_a_ca_bundle_run_as_non_root() {
    let image = image();
    let inspect = image.config();
    let config = &inspect["OCIv1"]["config"];
    assert_eq!(config["User"], "65532:65532");
    assert_eq!(config["Entrypoint"], json!(["/usr/local/bin/support-operator"]));
    assert_eq!(config["Cmd"], json!(["run"]));
    let layers = inspect["OCIv1"]["rootfs"]["diff_ids"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "FROM scratch, built without intermediate layers: one layer");
    assert_eq!(
        image.files(),
        ["etc/ssl/certs/ca-certificates.crt", "usr/local/bin/support-operator"],
        "the image holds the binary and the CA bundle, nothing else"
    );
    // No shell to fall back on: the binary starts by itself (statically linked) and, by PATH, under
    // the name the Deployment's `command:` uses.
    let version = image.run(&[], &[], &["support-operator", "--version"]);
    assert_eq!(version.code, Some(0), "{}", version.stderr);
    assert!(version.stdout.starts_with("support-operator "), "{}", version.stdout);
    let shell = image.run(&[], &[], &["/bin/sh", "-c", "true"]);
    assert_ne!(shell.code, Some(0), "the image has no shell");
    let user = image.run(&[], &[], &["support-operator", "check", "--policy", "nope.yaml"]);
    assert_eq!(user.code, Some(2), "a usage error, from the binary: {}", user.stderr);
}

#[test]
#[ignore = "needs the image: make image-test"]
fn check_in_the_image_prints_the_golden_report() {
    let image = image();
    let run = image.run(
        &[(&root().join("examples"), "/examples")],
        &[],
        &[
            "support-operator",
            "check",
            "--policy",
            "/examples/policies/aks.yaml",
            "--snapshot",
            "/examples/snapshots/aks-neglected.json",
            "--server-version",
            "v1.34.2",
            "--now",
            "2026-11-25T12:00:00Z",
            "--color",
            "never",
        ],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let golden = std::fs::read_to_string(root().join("tests/golden/aks-neglected.txt")).unwrap();
    assert_eq!(run.stdout, golden.replace("examples/", "/examples/"), "the image's report differs from the golden one");
}

/// The static binary talks to an API server by IP and by name (`localhost`, from /etc/hosts through
/// glibc's built-in lookup, with no NSS module in the image).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the image: make image-test"]
async fn check_in_the_image_reads_a_cluster_by_ip_and_by_name() {
    let image = image();
    let server = ApiServer::builder().git_version("v1.34.2").start().await;
    let snapshot: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("examples/snapshots/aks-neglected.json")).unwrap())
            .unwrap();
    for item in snapshot["items"].as_array().unwrap() {
        server.apply_object(item.clone());
    }
    let port = server.addr().port();
    for host in ["127.0.0.1", "localhost"] {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("image-kubeconfig-{host}"));
        std::fs::create_dir_all(&dir).unwrap();
        let config = test_apiserver::kubeconfig(&[("emulator", &format!("http://{host}:{port}"))]);
        std::fs::write(dir.join("config"), config).unwrap();
        let argv = ["support-operator", "check", "--policy", "aks", "--now", "2026-11-25T12:00:00Z", "-o", "json"];
        let run = tokio::task::spawn_blocking({
            let (dir, image) = (dir.clone(), image.clone());
            move || image.run(&[(&dir, "/kube")], &[("KUBECONFIG", "/kube/config")], &argv)
        })
        .await
        .unwrap();
        assert_eq!(run.code, Some(0), "{host}: {}", run.stderr);
        let status: Value = serde_json::from_str(&run.stdout).expect("-o json");
        assert_eq!(status["status"]["verdict"], "Unsupported", "{host}");
        assert_eq!(status["status"]["nodes"]["total"], 9, "{host}: the emulator's nodes were read");
        assert_eq!(status["status"]["controlPlane"]["version"], "v1.34.2", "{host}");
    }
}
