"""The Ansible inventory ansible-runner gets, derived from the settings alone.

Groups are the playbooks' interface: `whisperx` (the WhisperX host) and `spark2` (the node that
runs Parakeet and Magpie). When both are the same login on the same machine they share one host.
The SSH key appears as a path (`ansible_ssh_private_key_file`), never as key material.
"""

from __future__ import annotations

from typing import Any

from spark_control.config import Settings

SPARK2_HOST = "spark2-host"
WHISPERX_HOST = "whisperx-host"


def _host_vars(settings: Settings, address: str, user: str | None, port: int) -> dict[str, Any]:
    host: dict[str, Any] = {"ansible_host": address, "ansible_port": port}
    if user:
        host["ansible_user"] = user
    if settings.ssh_key:
        host["ansible_ssh_private_key_file"] = str(settings.ssh_key)
    return host


def host_names(settings: Settings) -> tuple[str, str]:
    """Inventory names of the Spark 2 host and the WhisperX host (one name when they are one login).

    Fixed aliases, never the address: a host named 127.0.0.1 or localhost would capture the role's
    `delegate_to: localhost` controller tasks and run them over SSH on the target.
    """
    same = (settings.whisperx_host, settings.whisperx_user, settings.whisperx_ssh_port) == (
        settings.spark2_host,
        settings.spark2_user,
        settings.spark2_ssh_port,
    )
    return (SPARK2_HOST, SPARK2_HOST) if same else (SPARK2_HOST, WHISPERX_HOST)


def build_inventory(settings: Settings) -> dict[str, Any]:
    spark2, whisperx = host_names(settings)
    assert settings.whisperx_host and settings.whisperx_ssh_port  # filled in by Settings
    return {
        "all": {
            "children": {
                "spark2": {
                    "hosts": {
                        spark2: _host_vars(
                            settings, settings.spark2_host, settings.spark2_user, settings.spark2_ssh_port
                        )
                    }
                },
                "whisperx": {
                    "hosts": {
                        whisperx: _host_vars(
                            settings, settings.whisperx_host, settings.whisperx_user, settings.whisperx_ssh_port
                        )
                    }
                },
            }
        }
    }
