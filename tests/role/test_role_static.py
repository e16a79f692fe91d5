"""The role documents every input, reads as its install phases, and its module is documented."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.role.helpers import REPO, _tool, ansible_env, load_plugin

ROLE = REPO / "roles/whisperx"
HOST = REPO / "roles/_whisperx_host"


def load(path: Path):
    return yaml.safe_load(path.read_text())


def test_argument_specs_document_exactly_the_defaults():
    defaults = load(ROLE / "defaults/main.yml")
    options = load(ROLE / "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(options) == set(defaults)
    for name, spec in options.items():
        assert spec.get("default") == defaults[name], name
        assert spec.get("description"), name


def test_the_spark_control_role_documents_exactly_its_defaults_under_its_prefix():
    role = REPO / "roles/spark_control"
    defaults = load(role / "defaults/main.yml")
    options = load(role / "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(options) == set(defaults) and all(name.startswith("spark_control_") for name in defaults)
    for name, spec in options.items():
        assert spec.get("default") == defaults[name] and spec.get("description"), name


def test_public_variables_carry_the_role_prefix_and_internal_ones_an_underscore():
    assert all(name.startswith("whisperx_") for name in load(ROLE / "defaults/main.yml"))
    assert all(name.startswith("_whisperx_") for name in load(ROLE / "vars/main.yml"))


def test_defaults_follow_the_existing_deployment():
    defaults = load(ROLE / "defaults/main.yml")
    assert defaults["whisperx_container_name"] == "whisperx-asr"
    assert defaults["whisperx_port"] == 8002
    assert defaults["whisperx_model"] == "medium"
    assert defaults["whisperx_memory"] == "40g"
    assert defaults["whisperx_memory_swap"] == "{{ whisperx_memory }}"  # no swap beyond the cap
    assert defaults["whisperx_gpus"] == "all"
    assert defaults["whisperx_restart_policy"] == "unless-stopped"
    assert defaults["whisperx_models_volume"] == "whisperx-models"
    assert defaults["whisperx_build_dir"] == "~/whisperx-build"


def test_vars_main_holds_constants_only():
    text = (ROLE / "vars/main.yml").read_text()
    assert len(text.splitlines()) < 40
    assert "{{" not in text and "{%" not in text
    assert all(isinstance(value, (str, int, bool)) for value in load(ROLE / "vars/main.yml").values())


def test_the_role_tasks_are_main_the_phases_and_the_status_entry_point():
    files = {p.stem for p in (ROLE / "tasks").glob("*.yml")}
    phases = {"preflight", "ship", "build", "start", "load", "rollback", "prune", "absent"}
    assert files == {"main", "status", *phases}


def test_the_internal_role_documents_one_entry_point_per_task_file_with_its_defaults():
    specs = load(HOST / "meta/argument_specs.yml")["argument_specs"]
    assert set(specs) == {p.stem for p in (HOST / "tasks").glob("*.yml")} == {"reach", "engine", "container", "status"}
    defaults = load(HOST / "defaults/main.yml")
    documented = {}
    for entry_point in specs.values():
        assert entry_point.get("short_description"), entry_point
        for name, spec in entry_point["options"].items():
            assert name.startswith("_whisperx_host_") and spec.get("description"), name
            if spec.get("required"):
                assert "default" not in spec and name not in defaults, name
            else:
                documented.setdefault(name, spec["default"])
                assert documented[name] == spec["default"], name
    assert documented == defaults


def test_the_model_names_are_listed_once_in_the_collection():
    listed = [
        path
        for folder in ("roles", "plugins", "playbooks", "meta", "inventory")
        for path in (REPO / folder).rglob("*")
        if path.suffix in (".yml", ".py") and "large-v3" in path.read_text()
    ]
    assert listed == [ROLE / "meta/argument_specs.yml"]


def test_every_model_spark_control_offers_is_accepted():
    choices = load(ROLE / "meta/argument_specs.yml")["argument_specs"]["main"]["options"]["whisperx_model"]["choices"]
    assert {"tiny", "tiny.en", "base", "small", "medium", "large-v3"} <= set(choices)


def test_main_reads_as_the_install_phases_in_order():
    text = (ROLE / "tasks/main.yml").read_text()
    included = re.findall(r"include_tasks: (\w+)\.yml", text)
    assert included[:5] == ["preflight", "ship", "build", "start", "load"]
    for phase in included:
        assert (ROLE / f"tasks/{phase}.yml").is_file()


def test_docker_is_only_driven_through_community_docker_modules():
    tasks = [*(ROLE / "tasks").glob("*.yml"), *(HOST / "tasks").glob("*.yml"), ROLE / "handlers/main.yml"]
    for path in [*tasks, *(REPO / "playbooks").glob("*.yml")]:
        text = path.read_text()
        assert not re.search(r"^\s*(ansible\.builtin\.)?(shell|command|raw):.*docker", text, re.M), path
        assert not re.search(r"argv:\s*\[\s*[\"']?docker", text), path


def test_the_token_is_only_ever_read_inside_no_log_tasks():
    for path in ROLE.rglob("*.yml"):
        for task in load(path) or []:
            if not isinstance(task, dict):
                continue
            blob = json.dumps({k: v for k, v in task.items() if k not in ("when", "name")})
            if "whisperx_hf_token_file | expanduser)" in blob or "whisperx_hf_token if" in blob:
                assert task.get("no_log") is True, (path, task.get("name"))


def test_playbooks_target_the_agreed_groups():
    hosts = {p.stem: load(p)[0]["hosts"] for p in (REPO / "playbooks").glob("*.yml")}
    assert hosts == {
        "whisperx": "whisperx_hosts:whisperx",
        "whisperx_remove": "whisperx_hosts:whisperx",
        "whisperx_rollback": "whisperx_hosts:whisperx",
        "whisperx_status": "whisperx_hosts:whisperx",
        "spark_control": "control",
        "service": "{{ service_hosts | default('spark2') }}",
    }


def test_the_install_rolls_one_host_at_a_time_and_stops_at_the_first_failure():
    play = load(REPO / "playbooks/whisperx.yml")[0]
    assert play["serial"] == "{{ whisperx_serial | default(1) }}" and play["max_fail_percentage"] == 0
    # Ansible counts a failure inside a block with `always` only at the end of its batch: the last task ends the play.
    last = play["tasks"][-1]
    assert last["ansible.builtin.meta"] == "end_play"
    assert last["when"] == "ansible_play_hosts_all | difference(ansible_play_hosts) | length > 0"
    for name in ("whisperx_remove", "whisperx_status", "whisperx_rollback"):
        assert "serial" not in load(REPO / f"playbooks/{name}.yml")[0], name


def test_status_and_preflight_are_also_reported_per_host_and_aggregated():
    status = [t for t in load(HOST / "tasks/status.yml")[0]["block"] if "ansible.builtin.set_stats" in t]
    reach = load(HOST / "tasks/reach.yml")
    stats = [
        t["ansible.builtin.set_stats"]
        for t in [*status, *reach[0]["rescue"], *reach[1:]]
        if "ansible.builtin.set_stats" in t
    ]
    by_host = [s for s in stats if "_by_host" in json.dumps(s["data"])]
    assert len(by_host) == 3 and all(s["aggregate"] is True and s["per_host"] is False for s in by_host)
    assert "{inventory_hostname: __whisperx_host_status}" in by_host[0]["data"]["whisperx_status_by_host"]
    assert all(s["aggregate"] is False for s in stats if s not in by_host)  # the old stats: the last host's
    # status imports reach.yml under `when: _whisperx_host_reached is not defined`: tasks after the register skip.
    assert reach[-1]["register"] == "_whisperx_host_reached"


def test_example_inventory_has_every_group(collection):
    done = subprocess.run(
        [_tool("ansible-inventory"), "-i", str(REPO / "inventory/example.yml"), "--list"],
        env=ansible_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    groups = json.loads(done.stdout)
    assert groups["whisperx_hosts"]["hosts"] == ["spark1", "spark2"]
    assert groups["spark2"]["hosts"] and groups["control"]["hosts"]
    assert "whisperx" in groups["all"]["children"]  # the old group, empty: the playbooks match it without a warning


def test_ansible_doc_shows_the_health_module(collection):
    done = subprocess.run(
        [_tool("ansible-doc"), "--json", "spark.inference.whisperx_health"],
        env=ansible_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    doc = json.loads(done.stdout)["spark.inference.whisperx_health"]
    assert {"url", "container", "wait", "wait_timeout", "require"} <= set(doc["doc"]["options"])
    assert doc["doc"]["attributes"]["check_mode"]["support"] == "full"
    assert doc["examples"] and doc["return"]["healthy"]


def test_ansible_doc_shows_the_role_entry_points(collection):
    done = subprocess.run(
        [_tool("ansible-doc"), "-t", "role", "--json", "spark.inference.whisperx"],
        env=ansible_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    entry_points = json.loads(done.stdout)["spark.inference.whisperx"]["entry_points"]
    assert {"main", "status"} <= set(entry_points)


# -- the health module's decisions, without a Docker engine -------------------------------------------------


@pytest.fixture(scope="module")
def health():
    return load_plugin("plugins/modules/whisperx_health.py", "whisperx_health")


def state(**kw):
    base = dict(running=True, restarting=False, restart_count=0, oom_killed=False, exit_code=0, memory=2**30)
    base.update(kw)
    return base


def test_healthy_only_when_every_required_model_is_loaded_and_no_error(health):
    ready = {"status": "ready", "whisper_loaded": True, "diarizer_loaded": True, "error": None}
    assert health.is_healthy(ready, ["whisper", "diarizer"])
    assert not health.is_healthy({**ready, "diarizer_loaded": False}, ["whisper", "diarizer"])
    assert health.is_healthy({**ready, "diarizer_loaded": False}, ["whisper"])
    assert not health.is_healthy({**ready, "status": "error", "error": "boom"}, ["whisper"])
    assert not health.is_healthy(None, ["whisper"])


def test_a_running_container_is_still_loading(health):
    assert health.stopped_reason(state(), 0, []) is None


def test_oom_is_named_from_the_state_the_event_or_an_unsent_sigkill_under_a_cap(health):
    assert health.stopped_reason(state(running=False, oom_killed=True), 0, []) == "oom_killed"
    oom_event = [{"Action": "oom"}, {"Action": "die", "Actor": {"Attributes": {"exitCode": "137"}}}]
    assert health.stopped_reason(state(restart_count=2), 0, oom_event) == "oom_killed"
    sigkill = [{"Action": "die", "Actor": {"Attributes": {"exitCode": "137"}}}]
    assert health.stopped_reason(state(running=False, exit_code=137), 0, sigkill) == "oom_killed"
    # docker kill / docker stop send the SIGKILL themselves: that is not the OOM killer
    sent = [{"Action": "kill"}, *sigkill]
    assert health.stopped_reason(state(running=False, exit_code=137), 0, sent) == "exited"


def test_an_oom_kill_names_the_memory_cap_it_exceeded(health):
    killed = [{"Action": "oom"}, {"Action": "die", "Actor": {"Attributes": {"exitCode": "137"}}}]
    message = health.stopped_message("whisperx-asr", "oom_killed", state(running=False, memory=256 * 2**20), killed)
    assert "was killed for exceeding its memory cap of 256 MiB (OOM kill, exit code 137)" in message
    assert "raise whisperx_memory" in message
    assert health.memory_size(40 * 2**30) == "40 GiB" and health.memory_size(3 * 2**29) == "1.5 GiB"


def test_cgroup_files_read_from_inside_stand_in_for_missing_engine_stats(health):
    cap = 256 * 2**20
    v1 = health.parse_cgroup_memory(f"{cap - 4096}\n{cap}\n17\n", cap)
    assert v1 == {"usage": cap - 4096, "limit": cap, "failcnt": 17}
    assert health.parse_cgroup_memory(f"{2**20}\nmax\n", cap) == {"usage": 2**20, "limit": cap, "failcnt": None}
    assert health.parse_cgroup_memory(f"{2**20}\n{2**40}\n", cap)["limit"] == cap, "the container's cap, not the host's"
    for nothing in ("", "cat: memory.current: No such file or directory", "0\n0\n"):
        assert health.parse_cgroup_memory(nothing, cap) is None, nothing


def test_a_container_pinned_at_its_cap_and_silent_is_starved_only_after_the_grace(health):
    watch = health.StarvationWatch(60)
    cap = 256 * 2**20
    pinned = {"usage": cap - 2**20, "limit": cap, "failcnt": None}
    assert not watch.observe(0, False, pinned)
    assert not watch.observe(59, False, pinned)
    assert watch.observe(60, False, pinned), "pinned at the cap and silent for 60 s"
    assert not watch.observe(61, True, None), "an answer from /health starts the count again"
    assert not watch.observe(62, False, pinned) and not watch.observe(121, False, pinned)
    assert watch.observe(122, False, pinned)


def test_below_the_cap_or_with_the_fail_count_still_a_container_is_not_starved(health):
    cap = 4 * 2**30
    roomy = health.StarvationWatch(10)
    assert not any(roomy.observe(t, False, {"usage": cap // 2, "limit": cap, "failcnt": 0}) for t in range(0, 100, 5))
    assert not any(roomy.observe(t, False, None) for t in range(100, 200, 5)), "no stats: never starved"
    # cgroup v1: the cap's fail count rising counts as pinned even when a reclaim just brought usage down
    v1 = health.StarvationWatch(10)
    assert not v1.observe(0, False, {"usage": cap // 2, "limit": cap, "failcnt": 100})
    assert not v1.observe(5, False, {"usage": cap // 2, "limit": cap, "failcnt": 900})
    assert v1.observe(15, False, {"usage": cap // 2, "limit": cap, "failcnt": 4000})
    assert not v1.observe(20, False, {"usage": cap // 2, "limit": cap, "failcnt": 4000}), "not rising: not pinned"
    off, full = health.StarvationWatch(0), {"usage": cap, "limit": cap}
    assert not off.observe(0, False, full) and not off.observe(999, False, full), "starved_after 0: off"


def test_a_swinging_usage_or_an_oom_event_in_a_living_container_still_counts_as_the_cap(health):
    cap = 256 * 2**20
    watch = health.StarvationWatch(30)
    at_cap, reclaimed = {"usage": cap, "limit": cap}, {"usage": int(cap * 0.8), "limit": cap}
    assert not watch.observe(0, False, at_cap) and watch.at_cap()
    assert not watch.observe(10, False, reclaimed), "the kernel reclaiming file pages: still the same stretch"
    assert not watch.observe(20, False, None), "a round without stats changes nothing"
    assert watch.observe(30, False, reclaimed)
    # The OOM killer took another process; the main one lives on, its usage back down, /health silent.
    oom = health.StarvationWatch(30)
    assert not oom.observe(0, False, {"usage": cap // 2, "limit": cap}, oom=True)
    assert oom.observe(30, False, {"usage": cap // 2, "limit": cap}) and oom.oom_seen
    # Loading below the cap, however slowly, is never starvation.
    slow = health.StarvationWatch(30)
    assert not any(slow.observe(t, False, reclaimed) for t in range(0, 600, 10)) and not slow.at_cap()


def test_a_starved_container_is_named_with_its_cap_and_the_fix(health):
    cap = 256 * 2**20
    usage = {"usage": cap - 2**19, "limit": cap, "failcnt": 812}
    message = health.starved_message("whisperx-asr", usage, 61.2, cap)
    assert message.startswith("Container whisperx-asr is starved at its memory cap of 256 MiB: it uses 255.5 MiB")
    assert "the cap was hit 812 times" in message and "has not answered for 61 s" in message
    assert message.endswith("raise whisperx_memory or choose a smaller whisperx_model.")
    killed = health.starved_message("whisperx-asr", None, 30, cap, oom=True)
    assert "its memory use could not be read" in killed and "the kernel killed a process in it (OOM kill)" in killed


def test_exits_and_crash_loops_are_told_apart(health):
    died = [{"Action": "die", "Actor": {"Attributes": {"exitCode": "1"}}}]
    assert health.stopped_reason(state(running=False, exit_code=1), 0, died) == "exited"
    assert health.stopped_reason(state(restart_count=3), 1, died) == "restarting"
    message = health.stopped_message("whisperx-asr", "restarting", state(restart_count=3), died)
    assert "exited with code 1" in message and "3 restarts" in message


def test_crash_loop_logs_are_collapsed(health):
    assert health.collapse_repeats(["a", "a", "a", "b"]) == ["a  (x3)", "b"]


def test_a_service_that_should_run_on_the_gpu_and_loaded_on_the_cpu_is_not_healthy(health):
    ready = {"status": "ready", "whisper_loaded": True, "diarizer_loaded": True, "error": None, "device": "cpu"}
    problem = health.device_problem(ready, "cuda")
    assert problem.startswith('The WhisperX models loaded on "cpu" instead of "cuda": ')
    assert "whisperx_cuda_torch_index" in problem and 'set whisperx_gpus to "" to run on the CPU' in problem
    assert health.device_problem({**ready, "device": "cuda"}, "cuda") is None
    assert health.device_problem(ready, None) is None and health.device_problem(ready, "") is None
    both = {**ready, "device": "cuda", "whisper_device": "cuda", "diarizer_device": "cuda"}
    assert health.device_problem(both, "cuda") is None
    assert health.device_problem({**both, "diarizer_device": "cpu"}, "cuda").startswith("The WhisperX models loaded on")


def test_a_cuda_load_error_says_what_to_check_when_gpus_were_requested(health):
    body = {"status": "error", "error": "WHISPERX_DEVICE=cuda but torch sees no CUDA device"}
    message = health.load_error_message(body, "cuda")
    assert message.startswith("The WhisperX models failed to load: WHISPERX_DEVICE=cuda but torch sees no CUDA device.")
    assert "Check that the image's torch has CUDA support" in message
    other = {"status": "error", "error": "Whisper model 'small' is not in the offline bundle"}
    assert health.load_error_message(other, "cuda") == (
        "The WhisperX models failed to load: Whisper model 'small' is not in the offline bundle."
    )
    assert "Check that" not in health.load_error_message(body, None)
