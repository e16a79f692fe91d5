#!/usr/bin/env bash
# Build a small test image from a directory on the local base image, only when the directory changed:
#
#   scripts/context-image.sh IMAGE CONTEXT_DIR
#
# The image carries the context's content hash as its `context-sha` label; a matching label means
# the image is current. Used for the GPU-host stand-in and the Spark 2 legacy-service stand-in.
set -euo pipefail
image=${1:?IMAGE}
context=${2:?CONTEXT_DIR}
base=${BASE_IMAGE_LOCAL:-spark-inference/debian:bookworm}

sum=$(cat "$context"/* | sha256sum | cut -c1-12)
if [ "$(docker image inspect --format '{{index .Config.Labels "context-sha"}}' "$image" 2>/dev/null)" = "$sum" ]; then
  echo "image $image present"
  exit 0
fi
DOCKER_BUILDKIT=0 docker build -q --build-arg BASE_IMAGE="$base" --label "context-sha=$sum" \
  -t "$image" "$context" >/dev/null
echo "image $image built"
