#!/usr/bin/env bash
# Usage: scripts/spark-control-context.sh DEST_DIR
# Stages the build context of spark-control's image (spark_control/Dockerfile) in DEST_DIR: the package,
# its pinned runtime, this collection with whisperx_container/ inside it (the build context the whisperx
# role ships), and the extra CA certificates ($EXTRA_CA_CERTS). Caches and byte code are left out, so an
# unchanged checkout stages byte-identical files and the classic builder reuses every layer.
set -euo pipefail
dest=${1:?DEST_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)

rm -rf "$dest"
mkdir -p "$dest/collection"
copy() { rsync -a --exclude __pycache__ --exclude '*.pyc' --exclude .pytest_cache --exclude .ruff_cache "$@"; }
copy "$root/spark_control/" "$dest/spark_control/" --exclude Dockerfile --exclude requirements.txt
cp "$root/spark_control/Dockerfile" "$root/spark_control/requirements.txt" "$dest/"
for part in galaxy.yml README.md meta plugins roles playbooks; do
  copy "$root/$part" "$dest/collection/"
done
copy "$root/whisperx_container" "$dest/collection/" --exclude 'certs/*.crt'
"$root/scripts/extra-ca-certs.sh" "$dest/certs"
