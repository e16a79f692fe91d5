#!/usr/bin/env bash
# A "remote GPU host" for playbooks over SSH: a systemd + sshd container on the host network
# that drives the host's Docker engine through its socket (siblings share the layer cache).
#
#   scripts/gpu-host.sh image            build spark-inference/gpu-host:bookworm (cached)
#   scripts/gpu-host.sh up NAME PORT [ADDRESS]
#                                        start host NAME with sshd on ADDRESS:PORT (default 127.0.0.1), wait
#                                        for SSH; any 127.x.y.z is loopback, so two hosts can share a PORT
#   scripts/gpu-host.sh down NAME        remove it and its state
#
# `up` writes $GPU_HOST_STATE/NAME/host.env (SSH_HOST, SSH_PORT, SSH_USER, SSH_KEY, HOME_DIR).
# The operator's home is bind-mounted at the same path on the Docker host, so any path under it
# that the role bind-mounts into a container means the same file to the engine.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
image=${GPU_HOST_IMAGE:-spark-inference/gpu-host:bookworm}
state=${GPU_HOST_STATE:-/var/tmp/spark-inference/gpu-hosts}
key=${GPU_HOST_KEY:-${XDG_CACHE_HOME:-$HOME/.cache}/spark-inference/ssh/id_ed25519}
user=spark

build_image() {
  "$here/scripts/context-image.sh" "$image" "$here/tests/images/gpu-host"
}

ensure_key() {
  [ -f "$key" ] && return
  mkdir -p "$(dirname "$key")"
  ssh-keygen -q -t ed25519 -N "" -C "spark-inference-tests" -f "$key"
}

ssh_opts=(-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
  -o ConnectTimeout=3)

up() {
  local name=$1 port=$2 address=${3:-127.0.0.1} home="$state/$1/home"
  build_image
  ensure_key
  down "$name" >/dev/null
  mkdir -p "$home"
  docker run -d --name "$name" --network host \
    --cap-add ALL --cap-drop SYS_RESOURCE \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --tmpfs /run --tmpfs /run/lock --tmpfs /tmp \
    -v /var/run/docker.sock:/var/run/docker.sock \
    -v "$home:$home" \
    -e SSH_PORT="$port" -e SSH_ADDRESS="$address" \
    -e OPERATOR="$user" -e OPERATOR_HOME="$home" -e OPERATOR_KEY="$(cat "$key.pub")" \
    --label spark-inference.gpu-host="$name" \
    "$image" >/dev/null
  for _ in $(seq 60); do
    if ssh "${ssh_opts[@]}" -i "$key" -p "$port" "$user@$address" true 2>/dev/null; then
      printf 'SSH_HOST=%s\nSSH_PORT=%s\nSSH_USER=%s\nSSH_KEY=%s\nHOME_DIR=%s\n' \
        "$address" "$port" "$user" "$key" "$home" > "$state/$name/host.env"
      echo "gpu host $name answers on ssh://$user@$address:$port (home $home)"
      return
    fi
    sleep 1
  done
  echo "gpu host $name did not answer on SSH at $address:$port within 60 s" >&2
  docker logs --tail 30 "$name" >&2 || true
  return 1
}

down() {
  local name=$1
  docker rm -f "$name" >/dev/null 2>&1 || true
  rm -rf "${state:?}/$name"
  echo "gpu host $name removed"
}

case ${1:-} in
  image) build_image ;;
  up) up "${2:?NAME}" "${3:?PORT}" "${4:-127.0.0.1}" ;;
  down) down "${2:?NAME}" ;;
  *) sed -n '2,14p' "$0"; exit 2 ;;
esac
