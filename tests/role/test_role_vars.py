"""The role's decisions that no CI host can reach for real, rendered from its own tasks.

The role's set_fact tasks (preflight.yml, prune.yml) derive the build arguments, the image tag, the device
the load phase requires and the images to remove from the public variables and what preflight learnt from
the host, through the filters in plugins/filter/whisperx.py. Here one local ansible-playbook run renders
those very tasks for several simulated hosts (an aarch64 engine with GPUs requested, as on a DGX Spark, is
one), so the decisions and the way the role wires them are tested without such a host.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.role.helpers import REPO, _tool, ansible_env

ROLE = REPO / "roles/whisperx"
RENDERED = [
    "_whisperx_build_args",
    "_whisperx_context_hash",
    "_whisperx_image",
    "_whisperx_expected_device",
    "_whisperx_env",  # the spec's environment
    "_whisperx_input_problems",
    "_whisperx_image_changed",
    "_whisperx_prunable_images",
]
CUDA_INDEX = "https://download.pytorch.org/whl/cu129"
CT2_BUILDER = "nvidia/cuda:12.9.1-cudnn-devel-ubuntu24.04"


def engine(arch: str) -> dict:
    """What docker_host_info tells preflight about the host's engine (roles/_whisperx_host/tasks/engine.yml)."""
    return {"host_info": {"Architecture": arch, "Runtimes": {"runc": {}, "nvidia": {}}}}


# One source file, so the context hash depends only on the build arguments.
SOURCE = {"files": [{"path": str(REPO / "whisperx_container/Dockerfile"), "checksum": "0" * 40, "mode": "0644"}]}

SCENARIOS = {
    "x86_gpu": {"_whisperx_host_engine": engine("x86_64"), "whisperx_gpus": "all"},
    "arm_gpu": {"_whisperx_host_engine": engine("aarch64"), "whisperx_gpus": "all"},
    "arm_gpu_mirror": {
        "_whisperx_host_engine": engine("aarch64"),
        "whisperx_gpus": "all",
        "whisperx_cuda_torch_index": "https://mirror.example/whl/cu128",
    },
    "arm_gpu_no_index": {
        "_whisperx_host_engine": engine("aarch64"),
        "whisperx_gpus": "all",
        "whisperx_cuda_torch_index": "",
    },
    "arm_gpu_explicit": {
        "_whisperx_host_engine": engine("aarch64"),
        "whisperx_gpus": "1",
        "whisperx_build_args": {"PIP_EXTRA_INDEX_URL": "https://other.example/simple"},
    },
    "arm_cpu": {"_whisperx_host_engine": engine("aarch64"), "whisperx_gpus": ""},
    "arm_gpu_no_ct2": {
        "_whisperx_host_engine": engine("aarch64"),
        "whisperx_gpus": "all",
        "whisperx_ctranslate2_cuda": False,
    },
    "x86_ct2_forced": {
        "_whisperx_host_engine": engine("x86_64"),
        "whisperx_gpus": "all",
        "whisperx_ctranslate2_cuda": True,
        "whisperx_cuda_arch_list": "9.0;12.0+PTX",
    },
    "arm_gpu_cpu_device": {
        "_whisperx_host_engine": engine("aarch64"),
        "whisperx_gpus": "all",
        "whisperx_env": {"WHISPERX_DEVICE": "cpu"},
    },
    # After an upgrade from ctx-111111111111: what docker_host_info lists (tasks/prune.yml).
    "prune": {
        "whisperx_gpus": "",
        "whisperx_image_name": "test/whisperx",
        "_whisperx_previous": {"exists": True, "container": {"Config": {"Image": "test/whisperx:ctx-111111111111"}}},
        "_whisperx_engine_images": {
            "images": [
                {"Id": "current", "RepoTags": ["{{ _whisperx_image }}"]},
                {"Id": "previous", "RepoTags": ["test/whisperx:ctx-111111111111"]},
                {"Id": "old", "RepoTags": ["test/whisperx:ctx-222222222222"]},
                {"Id": "used", "RepoTags": ["test/whisperx:ctx-333333333333"]},
                {"Id": "two-tags", "RepoTags": ["test/whisperx:ctx-444444444444", "test/whisperx:latest"]},
                {"Id": "other-repo", "RepoTags": ["test/whisperx-other:ctx-555555555555"]},
                {"Id": "not-ctx", "RepoTags": ["test/whisperx:cpu", "test/whisperx:ctx-66"]},
                {"Id": "untagged", "RepoTags": None},
            ],
            "containers": [{"Id": "another-installation", "ImageID": "used"}, {"Id": "this", "ImageID": "current"}],
        },
    },
    "no_change": {
        "whisperx_gpus": "",
        "_whisperx_previous": {"exists": True, "container": {"Config": {"Image": "{{ _whisperx_image }}"}}},
    },
    "x86_gpu_auto_device": {
        "_whisperx_host_engine": engine("x86_64"),
        "whisperx_gpus": "all",
        "whisperx_env": {"WHISPERX_DEVICE": "auto"},
    },
}


def load_tasks(name: str, *within: str) -> list[dict]:
    """The tasks of roles/whisperx/tasks/<name>, with those of the blocks named in `within` in their place."""
    tasks = []
    for task in yaml.safe_load((ROLE / "tasks" / name).read_text()):
        tasks += [task, *[t for key in within for t in task.get(key, [])]]
    return tasks


def derivations(name: str) -> list[dict]:
    """The role's own set_fact tasks from roles/whisperx/tasks/<name>, in their order."""
    return [task for task in load_tasks(name) if "ansible.builtin.set_fact" in task]


def write_bundle(path: Path, whisper: list[str]) -> Path:
    path.mkdir()
    models = [{"name": f"whisper-{m}", "kind": "whisper-ctranslate2", "path": f"whisper-{m}"} for m in whisper]
    models.append({"name": "campplus", "kind": "campplus-speaker-embedding", "path": "campplus"})
    (path / "manifest.json").write_text(json.dumps({"version": 1, "models": models}))
    return path


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, collection) -> dict[str, dict]:
    """The role's derived variables for every scenario: {scenario: {variable: value}}."""
    directory = tmp_path_factory.mktemp("role-vars")
    bundle = write_bundle(directory / "bundle", ["tiny.en", "base"])
    token = directory / "hf_token"
    token.write_text("hf_fake\n")
    scenarios = {
        **SCENARIOS,
        "bundle_has_model": {"whisperx_gpus": "", "whisperx_model": "base", "whisperx_model_bundle": str(bundle)},
        "bundle_lacks_model": {"whisperx_gpus": "", "whisperx_model": "small", "whisperx_model_bundle": str(bundle)},
        "bundle_model_as_directory": {
            "whisperx_gpus": "",
            "whisperx_model": "small",
            "whisperx_model_bundle": str(bundle),
            "whisperx_env": {"WHISPER_MODEL": "/models/custom"},
        },
    }
    common = {
        "ansible_connection": "local",
        "ansible_python_interpreter": str(_tool("python")),
        "whisperx_source_dir": str(REPO / "whisperx_container"),
        "whisperx_hf_token_file": str(token),
        "_whisperx_source": SOURCE,
        "_whisperx_host_engine": engine("x86_64"),
        "_whisperx_previous": {"exists": False},
        "_whisperx_engine_images": {"images": [], "containers": []},
    }
    defaults = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
    # Defaults lowest (group vars), each scenario's inputs above them (host vars), the role's vars/main.yml
    # above both (play vars_files), as when the role runs.
    inventory = {"all": {"vars": {**defaults, **common}, "hosts": scenarios}}
    (directory / "inventory.yml").write_text(yaml.safe_dump(inventory))
    removal = next(t for t in load_tasks("prune.yml", "block") if "community.docker.docker_image" in t)
    play = [
        {
            "hosts": "all",
            "gather_facts": False,
            "vars_files": [str(ROLE / "vars/main.yml")],
            "tasks": [
                # The SSH user's facts, as preflight gathers them (of the local user here).
                {"name": "User facts are known", "ansible.builtin.setup": {"gather_subset": ["!all", "user"]}},
                *derivations("preflight.yml"),
                *derivations("prune.yml"),
                {
                    "name": "Derived variables are rendered",
                    "ansible.builtin.copy": {
                        "content": "{{ dict(names | zip(names | map('extract', vars))) | to_json }}",
                        "dest": str(directory) + "/{{ inventory_hostname }}.json",
                        "mode": "0644",
                    },
                    "vars": {
                        "names": RENDERED,
                        "_whisperx_env": "{{ _whisperx_spec.env }}",
                        "_whisperx_prunable_images": removal["loop"],
                    },
                    "delegate_to": "localhost",
                },
            ],
        }
    ]
    (directory / "render.yml").write_text(yaml.safe_dump(play))
    done = subprocess.run(
        [_tool("ansible-playbook"), "-i", str(directory / "inventory.yml"), str(directory / "render.yml")],
        env=ansible_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return {name: json.loads((directory / f"{name}.json").read_text()) for name in scenarios}


def test_x86_64_with_gpus_builds_with_pypi_alone(rendered):
    assert rendered["x86_gpu"]["_whisperx_build_args"] == {}  # PyPI's torch and CTranslate2 have CUDA there


def test_aarch64_with_gpus_compiles_ctranslate2_with_cuda_and_the_cpu_does_not(rendered):
    assert rendered["arm_gpu"]["_whisperx_build_args"] == {
        "PIP_EXTRA_INDEX_URL": CUDA_INDEX,
        "CTRANSLATE2_CUDA": "1",
        "CT2_BUILDER_IMAGE": CT2_BUILDER,
    }
    assert rendered["arm_cpu"]["_whisperx_build_args"] == {}
    assert rendered["x86_ct2_forced"]["_whisperx_build_args"] == {
        "CTRANSLATE2_CUDA": "1",
        "CT2_BUILDER_IMAGE": CT2_BUILDER,
        "CUDA_ARCH_LIST": "9.0;12.0+PTX",
    }
    assert rendered["arm_gpu_no_ct2"]["_whisperx_build_args"] == {"PIP_EXTRA_INDEX_URL": CUDA_INDEX}
    assert rendered["arm_gpu_no_ct2"]["_whisperx_image"] != rendered["arm_gpu"]["_whisperx_image"], "it rebuilds"


def test_aarch64_with_gpus_takes_cuda_torch_from_pytorchs_index(rendered):
    assert rendered["arm_gpu"]["_whisperx_build_args"]["PIP_EXTRA_INDEX_URL"] == CUDA_INDEX


def test_the_index_is_part_of_the_image_tag_so_changing_it_rebuilds(rendered):
    tags = {name: rendered[name]["_whisperx_image"] for name in ("x86_gpu", "arm_gpu", "arm_gpu_mirror")}
    assert len(set(tags.values())) == 3, tags
    assert rendered["arm_gpu_mirror"]["_whisperx_build_args"]["PIP_EXTRA_INDEX_URL"] == (
        "https://mirror.example/whl/cu128"
    )
    # Without the index the aarch64 build still compiles CTranslate2, and takes torch from PyPI.
    assert "PIP_EXTRA_INDEX_URL" not in rendered["arm_gpu_no_index"]["_whisperx_build_args"]
    assert rendered["arm_gpu_no_index"]["_whisperx_build_args"]["CTRANSLATE2_CUDA"] == "1"


def test_an_explicit_build_argument_wins_and_the_cpu_needs_no_index(rendered):
    assert rendered["arm_gpu_explicit"]["_whisperx_build_args"]["PIP_EXTRA_INDEX_URL"] == (
        "https://other.example/simple"
    )
    assert "PIP_EXTRA_INDEX_URL" not in rendered["arm_cpu"]["_whisperx_build_args"]


def test_with_gpus_the_load_phase_requires_cuda_unless_the_operator_chose_the_cpu(rendered):
    assert rendered["arm_gpu"]["_whisperx_expected_device"] == "cuda"
    assert rendered["arm_gpu"]["_whisperx_env"]["WHISPERX_DEVICE"] == "cuda"
    # "auto" falls back to the CPU silently: that is what the check is there to catch.
    assert rendered["x86_gpu_auto_device"]["_whisperx_expected_device"] == "cuda"
    assert rendered["arm_gpu_cpu_device"]["_whisperx_expected_device"] == ""
    assert rendered["arm_cpu"]["_whisperx_expected_device"] == ""


def test_a_model_the_bundle_lacks_is_named_before_anything_changes(rendered):
    assert rendered["bundle_has_model"]["_whisperx_input_problems"] == []
    problems = rendered["bundle_lacks_model"]["_whisperx_input_problems"]
    assert len(problems) == 1
    assert problems[0].startswith('whisperx_model "small" is not in the offline model bundle ')
    assert problems[0].endswith("(it has: base, tiny.en): choose one of those, or add it to the bundle.")
    # A local model directory (WHISPER_MODEL=/...) is not looked up in the bundle.
    assert rendered["bundle_model_as_directory"]["_whisperx_input_problems"] == []


def test_after_an_upgrade_only_older_images_of_this_role_that_no_container_uses_are_removed(rendered):
    assert rendered["prune"]["_whisperx_image_changed"] is True
    # Kept: the current image, the rollback target, one another container uses, other repositories,
    # tags that are not the role's ctx-<12 hex>.
    assert rendered["prune"]["_whisperx_prunable_images"] == [
        "test/whisperx:ctx-222222222222",
        "test/whisperx:ctx-444444444444",
    ]


def test_a_first_install_removes_older_images_and_a_run_that_kept_the_image_removes_none(rendered):
    assert rendered["x86_gpu"]["_whisperx_image_changed"] is True  # nothing ran before
    assert rendered["no_change"]["_whisperx_image_changed"] is False
