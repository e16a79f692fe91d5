"""Settings: the contract's environment names, derived defaults, and clear refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from spark_control.config import Settings
from spark_control.inventory import build_inventory
from tests.conftest import REPO


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ("WHISPERX_HOST", "WHISPERX_USER", "WHISPERX_MODEL", "WHISPERX_PORT", "LEGACY_ASR_URL", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SPARK2_HOST", "spark2.lan")
    monkeypatch.setenv("SPARK2_USER", "ops")
    monkeypatch.setenv("SPARK_CONTROL_DATA_DIR", str(tmp_path))
    return monkeypatch


def test_whisperx_host_and_user_default_to_spark2(env: pytest.MonkeyPatch):
    settings = Settings()
    assert (settings.whisperx_host, settings.whisperx_user) == ("spark2.lan", "ops")
    assert settings.whisperx_container == "whisperx-asr"
    assert settings.whisperx_port == 8002
    assert settings.whisperx_model == "medium"
    assert settings.whisperx_url == "http://spark2.lan:8002"
    assert settings.legacy_asr_url == "http://spark2.lan:8000"


def test_contract_environment_names_are_read(env: pytest.MonkeyPatch):
    env.setenv("WHISPERX_HOST", "gpu1.lan")
    env.setenv("WHISPERX_USER", "gpu")
    env.setenv("WHISPERX_CONTAINER", "wx")
    env.setenv("WHISPERX_PORT", "9002")
    env.setenv("WHISPERX_MODEL", "large-v3")
    env.setenv("LEGACY_ASR_URL", "http://legacy:8000/")
    env.setenv("SPARK_CONTROL_API_TOKEN", "t0ken-from-env-long-enough-to-guard")
    settings = Settings()
    assert settings.whisperx_url == "http://gpu1.lan:9002"
    assert settings.whisperx_container == "wx"
    assert settings.served_model == "large-v3"
    assert settings.legacy_asr_url == "http://legacy:8000"
    assert settings.resolved_api_token() == "t0ken-from-env-long-enough-to-guard"


@pytest.mark.parametrize("model", ["huge", "tiny.en", "large-v2", "/models/whisper-tiny.en", ""])
def test_an_unknown_whisperx_model_is_refused_with_the_allowed_names(env: pytest.MonkeyPatch, model: str):
    env.setenv("WHISPERX_MODEL", model)
    with pytest.raises(ValidationError) as error:
        Settings()
    assert "WHISPERX_MODEL must be one of tiny, base, small, medium, large-v3" in str(error.value)


def _bundle(tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    models = [{"name": "whisper-tiny.en", "kind": "whisper-ctranslate2"}, {"name": "campplus", "kind": "speaker"}]
    (bundle / "manifest.json").write_text(json.dumps({"models": models}))
    return bundle


def test_an_offline_bundle_model_overrides_the_served_model(env: pytest.MonkeyPatch, tmp_path: Path):
    env.setenv("WHISPERX_MODEL_BUNDLE", str(_bundle(tmp_path)))
    env.setenv("WHISPERX_BUNDLE_MODEL", "tiny.en")
    settings = Settings()
    assert settings.whisperx_model == "medium"
    assert settings.served_model == "tiny.en"


def test_a_bundle_model_must_exist_in_the_bundle(env: pytest.MonkeyPatch, tmp_path: Path):
    env.setenv("WHISPERX_MODEL_BUNDLE", str(_bundle(tmp_path)))
    env.setenv("WHISPERX_BUNDLE_MODEL", "base")
    with pytest.raises(ValidationError, match=r"WHISPERX_BUNDLE_MODEL 'base' is not in .* \(it has: tiny.en\)"):
        Settings()


def test_a_bundle_model_needs_a_bundle(env: pytest.MonkeyPatch):
    env.setenv("WHISPERX_BUNDLE_MODEL", "tiny.en")
    with pytest.raises(ValidationError, match="needs WHISPERX_MODEL_BUNDLE"):
        Settings()


def test_spark2_host_is_required(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("SPARK2_HOST", raising=False)
    with pytest.raises(ValidationError, match="SPARK2_HOST"):
        Settings()


def test_without_a_token_one_is_generated_once_and_kept_private(env: pytest.MonkeyPatch, tmp_path: Path):
    env.delenv("SPARK_CONTROL_API_TOKEN", raising=False)
    first = Settings().resolved_api_token()
    assert len(first) >= 32
    assert Settings().resolved_api_token() == first
    assert (tmp_path / "api_token").stat().st_mode & 0o777 == 0o600


def test_inventory_has_the_playbook_groups_and_a_key_path_only(env: pytest.MonkeyPatch, tmp_path: Path):
    key = tmp_path / "id_ed25519"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nsecret-key-material\n")
    env.setenv("SPARK_CONTROL_SSH_KEY", str(key))
    env.setenv("SPARK2_SSH_PORT", "2230")
    env.setenv("WHISPERX_HOST", "gpu1.lan")
    inventory = build_inventory(Settings())
    groups = inventory["all"]["children"]
    assert groups["spark2"]["hosts"]["spark2-host"] == {
        "ansible_host": "spark2.lan",
        "ansible_port": 2230,
        "ansible_user": "ops",
        "ansible_ssh_private_key_file": str(key),
    }
    assert groups["whisperx_hosts"]["hosts"]["whisperx-host"]["ansible_host"] == "gpu1.lan"
    assert "secret-key-material" not in json.dumps(inventory)


def test_one_login_on_one_machine_is_one_inventory_host(env: pytest.MonkeyPatch):
    groups = build_inventory(Settings())["all"]["children"]
    assert list(groups["spark2"]["hosts"]) == list(groups["whisperx_hosts"]["hosts"]) == ["spark2-host"]


def test_one_backend_named_in_whisperx_hosts_is_its_own_inventory_host(env: pytest.MonkeyPatch):
    """WHISPERX_HOSTS with one entry elsewhere than Spark 2 must not take over Spark 2's host (its services)."""
    env.setenv("WHISPERX_HOSTS", "gpu1.lan:9002")
    groups = build_inventory(Settings())["all"]["children"]
    assert groups["spark2"]["hosts"]["spark2-host"]["ansible_host"] == "spark2.lan"
    assert groups["whisperx_hosts"]["hosts"] == {
        "whisperx-host": {
            "ansible_host": "gpu1.lan",
            "ansible_port": 22,
            "ansible_user": "ops",
            "whisperx_container_name": "whisperx-asr",
            "whisperx_port": 9002,
            "whisperx_api_key_dest": str(Settings().secrets_dir / "whisperx-api-key"),
        }
    }


def test_several_gpu_hosts_are_one_backend_and_one_inventory_host_each(env: pytest.MonkeyPatch):
    """WHISPERX_HOSTS: each host[:port] is a backend named whisperx@host; one on a port of its own (two backends on
    one engine) also gets a container and jobs volume of its own."""
    env.setenv("WHISPERX_HOSTS", " gpu1.lan, gpu2.lan:8003 ,[fd00::7]")
    settings = Settings()
    assert settings.whisperx_endpoints == [("gpu1.lan", 8002), ("gpu2.lan", 8003), ("fd00::7", 8002)]
    assert settings.whisperx_url == "http://gpu1.lan:8002"
    hosts = build_inventory(settings)["all"]["children"]["whisperx_hosts"]["hosts"]
    assert list(hosts) == ["whisperx@gpu1.lan", "whisperx@gpu2.lan_8003", "whisperx@fd00__7"]
    first, second = hosts["whisperx@gpu1.lan"], hosts["whisperx@gpu2.lan_8003"]
    assert first["ansible_host"] == "gpu1.lan" and first["ansible_user"] == "ops" and first["ansible_port"] == 22
    assert (first["whisperx_container_name"], first["whisperx_port"]) == ("whisperx-asr", 8002)
    assert "whisperx_jobs_volume" not in first
    assert second["ansible_host"] == "gpu2.lan" and second["whisperx_port"] == 8003
    assert (second["whisperx_container_name"], second["whisperx_jobs_volume"]) == (
        "whisperx-asr-8003",
        "whisperx-jobs-8003",
    )
    assert first["whisperx_api_key_dest"] != second["whisperx_api_key_dest"], "each backend's own key"
    assert hosts["whisperx@fd00__7"]["ansible_host"] == "fd00::7"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("gpu1.lan:http", "is not host[:port]"),
        ("gpu1.lan:70000", "1-65535"),
        ("gpu1.lan, gpu1.lan:8002", "names a backend twice"),
        ("ops@gpu1.lan", "is not host[:port]"),
    ],
)
def test_a_malformed_host_list_is_refused_with_the_setting_named(env: pytest.MonkeyPatch, value: str, says: str):
    env.setenv("WHISPERX_HOSTS", value)
    with pytest.raises(ValidationError) as error:
        Settings()
    assert "WHISPERX_HOSTS" in str(error.value) and says in str(error.value)


def test_one_url_cannot_stand_for_several_backends(env: pytest.MonkeyPatch):
    env.setenv("WHISPERX_HOSTS", "gpu1.lan,gpu2.lan")
    env.setenv("WHISPERX_URL", "http://gpu1.lan:8002")
    with pytest.raises(ValidationError, match="WHISPERX_URL names one backend"):
        Settings()


def test_inventory_names_are_never_an_address_that_means_the_controller(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """A host named 127.0.0.1 would take over the role's delegate_to: localhost tasks."""
    monkeypatch.setenv("SPARK2_HOST", "127.0.0.1")
    monkeypatch.setenv("SPARK_CONTROL_DATA_DIR", str(tmp_path))
    names = {h for g in build_inventory(Settings())["all"]["children"].values() for h in g.get("hosts", {})}
    assert not names & {"localhost", "127.0.0.1", "::1"}


def test_extra_ca_certs_and_container_env_are_read_as_documented(env: pytest.MonkeyPatch):
    env.setenv("WHISPERX_EXTRA_CA_CERTS", "/usr/local/share/ca-certificates /etc/corp/proxy.crt")
    env.setenv("WHISPERX_ENV", '{"WHISPERX_BATCH_SIZE": "4"}')
    settings = Settings()
    assert settings.whisperx_extra_ca_certs == ["/usr/local/share/ca-certificates", "/etc/corp/proxy.crt"]
    assert settings.whisperx_env == {"WHISPERX_BATCH_SIZE": "4"}


def test_a_malformed_container_env_is_refused_with_the_setting_named(env: pytest.MonkeyPatch):
    env.setenv("WHISPERX_ENV", "WHISPERX_BATCH_SIZE=4")
    with pytest.raises(ValidationError, match="WHISPERX_ENV must be a JSON object"):
        Settings()


@pytest.mark.parametrize("name", ["HF_TOKEN", "hf_token", "HUGGING_FACE_HUB_TOKEN", "S3_SECRET_KEY", "DB_PASSWORD"])
def test_a_secret_in_the_container_env_is_refused_without_echoing_it(env: pytest.MonkeyPatch, name: str):
    """WHISPERX_ENV reaches the runner's extravars and job.json in clear text: a secret never gets that far."""
    env.setenv("WHISPERX_ENV", json.dumps({"WHISPERX_BATCH_SIZE": "4", name: "hf_envSecretNeverEchoed42"}))
    with pytest.raises(ValidationError) as error:
        Settings()
    message = str(error.value)
    assert f"WHISPERX_ENV must not carry secrets ({name})" in message
    assert "HF_TOKEN or HF_TOKEN_FILE" in message, "it says where the token goes instead"
    assert "hf_envSecretNeverEchoed42" not in message


def test_the_server_refuses_a_secret_in_the_container_env_before_writing_anything(
    env: pytest.MonkeyPatch, tmp_path: Path
):
    env.setenv("WHISPERX_ENV", '{"HF_TOKEN": "hf_envSecretNeverEchoed42"}')
    result = subprocess.run(
        [sys.executable, "-m", "spark_control"], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert result.returncode == 1
    assert "WHISPERX_ENV must not carry secrets (HF_TOKEN)" in result.stderr
    assert "hf_envSecretNeverEchoed42" not in result.stdout + result.stderr
    assert not any(tmp_path.iterdir()), "no job directory, no state, nothing in the data directory"


def test_the_server_refuses_a_bad_configuration_in_one_message_without_a_traceback(env: pytest.MonkeyPatch):
    env.setenv("WHISPERX_MODEL", "huge")
    result = subprocess.run(
        [sys.executable, "-m", "spark_control"], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert result.returncode == 1
    assert "invalid configuration" in result.stderr
    assert "WHISPERX_MODEL must be one of tiny, base, small, medium, large-v3" in result.stderr
    assert "Traceback" not in result.stderr
