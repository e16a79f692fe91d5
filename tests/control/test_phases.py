"""Install phases come from the role's task file names, mapped in one place."""

from __future__ import annotations

import pytest

from spark_control.runner.phases import INSTALL_PHASES, phase_of


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
