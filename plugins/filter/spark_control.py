# Copyright (c) spark-inference developers
# Apache License 2.0 (see galaxy.yml)
"""The role spark.inference.spark_control's logic: the container's environment and the problems with the inputs.

Each filter is documented in its sidecar file (plugins/filter/<name>.yml) and unit-tested in
tests/role/test_filters.py.
"""

from __future__ import annotations

from ansible_collections.spark.inference.plugins.filter.whisperx import carries_a_secret

SECRETS = "/run/secrets"
DATA_DIR = "/var/lib/spark-control/data"
CONTRACT = (
    ("SPARK2_HOST", "spark2_host"),
    ("SPARK2_USER", "spark2_user"),
    ("SPARK2_SSH_PORT", "spark2_ssh_port"),
    ("WHISPERX_HOST", "whisperx_host"),
    ("WHISPERX_USER", "whisperx_user"),
    ("WHISPERX_HOSTS", "whisperx_hosts"),
    ("WHISPERX_CONTAINER", "whisperx_container"),
    ("WHISPERX_PORT", "whisperx_port"),
    ("WHISPERX_MODEL", "whisperx_model"),
    ("LEGACY_ASR_URL", "legacy_asr_url"),
)


def spark_control_env(settings, port=8080, extra=None, ssh_key=False, hf_token=False):
    """spark-control's environment: the contract's settings that are set, `extra`, and the secrets' paths only."""
    env = {name: str(settings[key]) for name, key in CONTRACT if settings.get(key) not in (None, "")}
    env.update({str(k): str(v) for k, v in (extra or {}).items()})
    env.update({"SPARK_CONTROL_PORT": str(port), "SPARK_CONTROL_API_TOKEN_FILE": f"{SECRETS}/api_token"})
    if ssh_key:
        env["SPARK_CONTROL_SSH_KEY"] = f"{SECRETS}/ssh_key"
    if hf_token:
        env["HF_TOKEN_FILE"] = f"{SECRETS}/hf_token"
    return env


def spark_control_input_problems(state, spark2_host="", extra=None, api_token_file="", ssh_key_file=""):
    """Problems with the inputs, each a sentence saying what to fix; the first one ends the play."""
    if state == "absent":
        return []
    problems = []
    if not spark2_host:
        problems.append("spark_control_spark2_host is empty: set it to the Spark 2 node spark-control manages.")
    secret = sorted(str(k) for k, v in (extra or {}).items() if carries_a_secret(str(k), str(v)))
    if secret:
        problems.append(
            f"spark_control_env must not carry secrets ({', '.join(secret)}): it reaches docker inspect. Give"
            " secrets as files (spark_control_ssh_key_file, spark_control_api_token_file, spark_control_hf_token_file)."
        )
    if not ssh_key_file:
        problems.append("spark_control_ssh_key_file is empty: spark-control reaches the GPU hosts over SSH with it.")
    return problems


class FilterModule:
    def filters(self):
        return {"spark_control_env": spark_control_env, "spark_control_input_problems": spark_control_input_problems}
