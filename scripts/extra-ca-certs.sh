#!/usr/bin/env bash
# Usage: scripts/extra-ca-certs.sh DEST_DIR [SOURCE...]
# Copies extra CA certificates (PEM files, or directories of *.crt) into DEST_DIR so an
# image build can trust an HTTPS-intercepting proxy. SOURCE defaults to $EXTRA_CA_CERTS,
# a space-separated list; empty means no extra certificates (DEST_DIR is left empty).
set -euo pipefail
dest=$1; shift
sources=("$@")
if ((${#sources[@]} == 0)) && [ -n "${EXTRA_CA_CERTS:-}" ]; then
  read -r -a sources <<<"$EXTRA_CA_CERTS"
fi

mkdir -p "$dest"
find "$dest" -maxdepth 1 -name '*.crt' -delete
n=0
for src in "${sources[@]}"; do
  if [ -d "$src" ]; then
    files=("$src"/*.crt)
  else
    files=("$src")
  fi
  for f in "${files[@]}"; do
    [ -e "$f" ] || continue
    grep -q "BEGIN CERTIFICATE" "$f" || { echo "not a PEM certificate: $f" >&2; exit 1; }
    cp "$f" "$dest/$(basename "${f%.*}").crt"
    n=$((n + 1))
  done
done
echo "$n extra CA certificate(s) in $dest"
