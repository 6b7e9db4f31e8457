#!/usr/bin/env bash
# Pins the operator image of the release overlay (config/release) to a digest.
#
#   scripts/pin-image-digest.sh sha256:<64 hex>                 # a digest you already have
#   scripts/pin-image-digest.sh --digestfile FILE               # written by `buildah push --digestfile FILE ...`
#   scripts/pin-image-digest.sh --resolve REGISTRY/REPO:TAG     # ask the registry (needs skopeo)
#   OVERLAY=path/to/overlay scripts/pin-image-digest.sh ...     # another overlay (default config/release)
#   IMAGE=registry/repo scripts/pin-image-digest.sh ...         # another image entry (default below)
#
# Rewrites the `digest:` of the `images:` entry named IMAGE in OVERLAY/kustomization.yaml, nothing else,
# then checks with `kubectl kustomize` (when kubectl is on PATH) that the Deployment now runs
# IMAGE@DIGEST. Exit 0 on success (also when the digest was already pinned), 2 on bad input.
set -euo pipefail
cd "$(dirname "$0")/.."

OVERLAY="${OVERLAY:-config/release}"
IMAGE="${IMAGE:-ghcr.io/support-operator/support-operator}"
FILE="${OVERLAY}/kustomization.yaml"

die() { printf 'pin-image-digest: error: %s\n' "$*" >&2; exit 2; }
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[ $# -ge 1 ] || usage
case "$1" in
  --digestfile)
    [ $# -eq 2 ] || usage
    [ -r "$2" ] || die "$2: cannot read the digest file"
    digest="$(tr -d ' \n\r\t' <"$2")"
    ;;
  --resolve)
    [ $# -eq 2 ] || usage
    command -v skopeo >/dev/null 2>&1 || die "--resolve needs skopeo (apt-get install skopeo)"
    digest="$(skopeo inspect --format '{{.Digest}}' "docker://$2")" || die "$2: skopeo could not inspect it"
    ;;
  -h | --help) usage ;;
  *)
    [ $# -eq 1 ] || usage
    digest="$1"
    ;;
esac

[[ "${digest}" =~ ^sha256:[0-9a-f]{64}$ ]] || die "'${digest}' is not a digest (sha256: and 64 lowercase hex digits)"
[ -f "${FILE}" ] || die "${FILE}: no such file"

# The entry: a line `- name: IMAGE` under `images:`, then its own `digest:` line before the next entry.
tmp="$(mktemp "${FILE}.XXXXXX")"
trap 'rm -f "${tmp}"' EXIT
awk -v image="${IMAGE}" -v digest="${digest}" '
  /^[^ #]/ { in_images = ($0 ~ /^images:[ \t]*$/); in_entry = 0 }
  in_images && /^[ \t]*-[ \t]+name:/ {
    name = $0; sub(/^[ \t]*-[ \t]+name:[ \t]*/, "", name); sub(/[ \t]+#.*$/, "", name); gsub(/["\x27]/, "", name)
    in_entry = (name == image); if (in_entry) entries++
  }
  in_images && in_entry && /^[ \t]+digest:/ {
    match($0, /^[ \t]+digest:[ \t]*/); $0 = substr($0, 1, RLENGTH) digest; digests++
  }
  { print }
  END {
    if (entries != 1) { printf "pin-image-digest: error: %d images: entries named %s\n", entries, image > "/dev/stderr"; exit 3 }
    if (digests != 1) { printf "pin-image-digest: error: the entry for %s has %d digest: lines\n", image, digests > "/dev/stderr"; exit 3 }
  }
' "${FILE}" >"${tmp}" || die "${FILE}: not updated"

if cmp -s "${tmp}" "${FILE}"; then
  printf 'pin-image-digest: %s already pins %s@%s\n' "${FILE}" "${IMAGE}" "${digest}" >&2
else
  cat "${tmp}" >"${FILE}"
  printf 'pin-image-digest: %s now pins %s@%s\n' "${FILE}" "${IMAGE}" "${digest}" >&2
fi

if command -v kubectl >/dev/null 2>&1; then
  kubectl kustomize "${OVERLAY}" | grep -qF "image: ${IMAGE}@${digest}" \
    || die "kubectl kustomize ${OVERLAY} does not show image: ${IMAGE}@${digest}"
fi
