"""The Ansible inventory ansible-runner gets, derived from the settings alone.

Groups are the playbooks' interface: `whisperx_hosts` (one host per WhisperX backend, WHISPERX_HOSTS)
and `spark2` (the node that runs Parakeet and Magpie). One backend on the same login on the same
machine as Spark 2 shares its host. Each backend's container, port and API key copy are its host
vars, so the install playbook can roll them one host at a time. The SSH key appears as a path
(`ansible_ssh_private_key_file`), never as key material.
"""

from __future__ import annotations

from typing import Any

from spark_control.backends import BackendAddress, backend_addresses
from spark_control.config import Settings

SPARK2_HOST = "spark2-host"
WHISPERX_HOST = "whisperx-host"
WHISPERX_GROUP = "whisperx_hosts"


def _host_vars(settings: Settings, address: str, user: str | None, port: int) -> dict[str, Any]:
    host: dict[str, Any] = {"ansible_host": address, "ansible_port": port}
    if user:
        host["ansible_user"] = user
    if settings.ssh_key:
        host["ansible_ssh_private_key_file"] = str(settings.ssh_key)
    return host


def single_host_name(settings: Settings) -> str:
    """The inventory name of a lone WhisperX host: Spark 2's own when they are one login on one machine.

    Fixed aliases, never the address: a host named 127.0.0.1 or localhost would capture the role's
    `delegate_to: localhost` controller tasks and run them over SSH on the target.
    """
    (host, _), *others = settings.whisperx_endpoints
    same = (host, settings.whisperx_user, settings.whisperx_ssh_port) == (
        settings.spark2_host,
        settings.spark2_user,
        settings.spark2_ssh_port,
    )
    return SPARK2_HOST if same and not others else WHISPERX_HOST


def whisperx_backends(settings: Settings) -> list[BackendAddress]:
    return backend_addresses(settings, single_host_name(settings))


def build_inventory(settings: Settings) -> dict[str, Any]:
    assert settings.whisperx_ssh_port  # filled in by Settings
    spark2 = _host_vars(settings, settings.spark2_host, settings.spark2_user, settings.spark2_ssh_port)
    backends = {
        b.inventory_name: {
            **_host_vars(settings, b.host, settings.whisperx_user, settings.whisperx_ssh_port),
            **b.role_vars(),
        }
        for b in whisperx_backends(settings)
    }
    if SPARK2_HOST in backends:  # one host in both groups: the same login, so one set of connection vars
        backends[SPARK2_HOST] = {**spark2, **backends[SPARK2_HOST]}
    return {
        "all": {
            "children": {
                "spark2": {"hosts": {SPARK2_HOST: spark2}},
                WHISPERX_GROUP: {"hosts": backends},
                "whisperx": {},  # the playbooks' old group, also in their host pattern: empty, so no warning
            }
        }
    }
