"""Install phases come from the role's task file names, mapped in one place and served to the dashboard."""

from __future__ import annotations

import re

import pytest
import yaml

from spark_control.config import WHISPERX_MODELS
from spark_control.runner.phases import INSTALL_PHASES, phase_of
from tests.control.helpers import client_for


@pytest.mark.parametrize(
    ("task_path", "phase"),
    [
        (
            "/home/ops/.ansible/collections/ansible_collections/spark/inference/roles/whisperx/tasks/preflight.yml:3",
            "preflight",
        ),
        ("/work/main/roles/whisperx/tasks/ship.yml:12", "ship"),
        ("/x/roles/whisperx/tasks/build.yml:1", "build"),
        ("/x/roles/whisperx/tasks/start.yml:40", "start"),
        ("/x/roles/whisperx/tasks/load.yml:7", "load"),
        ("/x/roles/whisperx/tasks/main.yml:1", None),
        ("/x/roles/whisperx/handlers/main.yml:1", None),
        ("/x/roles/other/tasks/build.yml:1", None),
        ("/x/playbooks/whisperx.yml:5", None),
        (None, None),
    ],
)
def test_phase_of_a_task(task_path: str | None, phase: str | None):
    assert phase_of(task_path) == phase


def test_the_contract_phases_in_order():
    assert INSTALL_PHASES == ("preflight", "ship", "build", "start", "load")


def test_the_role_has_one_task_file_per_phase(repo):
    tasks = repo / "roles" / "whisperx" / "tasks"
    if not tasks.is_dir():
        pytest.fail("roles/whisperx/tasks is missing (issue 4)")
    assert {p.stem for p in tasks.glob("*.yml")} >= set(INSTALL_PHASES)


def test_the_phases_are_the_role_s_own_in_its_order(repo):
    """The role's main.yml includes the phase files in the order spark-control lists them."""
    main = (repo / "roles" / "whisperx" / "tasks" / "main.yml").read_text()
    included = re.findall(r"include_tasks: (\w+)\.yml", main)
    assert [name for name in included if name in INSTALL_PHASES] == list(INSTALL_PHASES)


def test_the_api_serves_the_phases_and_models_the_dashboard_draws(make_settings, serve, repo):
    with client_for(serve(make_settings(whisperx_model="small"))) as client:
        options = client.get("/api/whisperx/options").json()
    assert [p["name"] for p in options["phases"]] == list(INSTALL_PHASES)
    assert all(p["title"] and p["covers"] and p["doing"] for p in options["phases"])
    assert options["outcome"]["name"] == "ready"
    assert options["models"] == list(WHISPERX_MODELS) and options["default_model"] == "small"
    spec = yaml.safe_load((repo / "roles" / "whisperx" / "meta" / "argument_specs.yml").read_text())
    choices = spec["argument_specs"]["main"]["options"]["whisperx_model"]["choices"]
    assert set(WHISPERX_MODELS) <= set(choices), "every model spark-control offers, the role accepts"
