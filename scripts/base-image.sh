#!/usr/bin/env bash
# Builds the local Debian bookworm base image that every test image is built FROM.
# No registry is reachable, so the image is a debootstrap rootfs imported into Docker.
# Cached: does nothing when the image exists.
set -euo pipefail
image=${BASE_IMAGE_LOCAL:-spark-inference/debian:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "base image $image present"
  exit 0
fi

rootfs=$(mktemp -d /tmp/spark-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap bookworm from $mirror"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["bash"]' \
  - "$image" >/dev/null
echo "base image $image built: $(docker image inspect --format '{{.Size}}' "$image") bytes"
