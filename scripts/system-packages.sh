#!/usr/bin/env bash
# Debian packages the tests need. Installs only what is missing, so a second run costs nothing.
set -euo pipefail

pkgs=(python3-venv ffmpeg espeak-ng sox chromium debootstrap openssh-client rsync ca-certificates)
# Any Docker engine will do (docker-ce, docker.io); install Debian's only when none is present.
command -v dockerd >/dev/null 2>&1 || pkgs+=(docker.io)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "system packages present"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
