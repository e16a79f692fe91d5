#!/bin/bash
# Prepares the container to boot systemd without --privileged, then hands over to it.
# Environment: SSH_PORT (sshd's port on the shared host network), SSH_ADDRESS (the address it listens on,
# default 127.0.0.1; any 127.x.y.z is loopback, so stand-ins can share a port), OPERATOR (login name),
# OPERATOR_HOME (the operator's home; bind-mounted at the same path as on the Docker host, so
# paths the role bind-mounts into its containers mean the same thing to the host's engine),
# OPERATOR_KEY (an authorized public key).
set -euo pipefail

# cgroup v1 directories arrive read-only; systemd needs to write them.
for dir in /sys/fs/cgroup/*/; do
  mount -o remount,bind,rw "$dir" 2>/dev/null || true
done
mount -o remount,rw /sys/fs/cgroup 2>/dev/null || true

operator=${OPERATOR:-spark}
home=${OPERATOR_HOME:-/home/$operator}
if ! id "$operator" >/dev/null 2>&1; then
  # The socket's group decides who may talk to the engine; give the docker group its gid.
  if [ -S /var/run/docker.sock ]; then
    groupmod -o -g "$(stat -c %g /var/run/docker.sock)" docker
  fi
  mkdir -p "$(dirname "$home")"
  useradd --home-dir "$home" --no-create-home --shell /bin/bash --groups docker "$operator"
  mkdir -p "$home/.ssh"
  printf '%s\n' "${OPERATOR_KEY:?OPERATOR_KEY is required}" > "$home/.ssh/authorized_keys"
  chmod 700 "$home/.ssh"; chmod 600 "$home/.ssh/authorized_keys"
  chown -R "$operator:$operator" "$home"
  echo "$operator ALL=(ALL) NOPASSWD:ALL" > "/etc/sudoers.d/$operator"
fi

ssh-keygen -A >/dev/null
cat > /etc/ssh/sshd_config.d/gpu-host.conf <<CONF
Port ${SSH_PORT:-22}
ListenAddress ${SSH_ADDRESS:-127.0.0.1}
PasswordAuthentication no
PermitRootLogin no
CONF

exec /sbin/init
