"""The role's rules, as its filter plugin states them (plugins/filter/whisperx.py), without Ansible running."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import random
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from tests.role.helpers import REPO, load_plugin

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture(scope="module")
def wx():
    return load_plugin("plugins/filter/whisperx.py", "whisperx_filters")


def write(path: Path, text: str = "x\n", mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def find(root: Path) -> dict:
    """What ansible.builtin.find (recurse, hidden, file_type any, get_checksum) registers for `root`."""
    files = []
    for path in sorted(root.rglob("*")):
        entry = {"path": str(path), "mode": f"{path.stat().st_mode & 0o7777:04o}"}
        if path.is_file():
            entry["checksum"] = hashlib.sha1(path.read_bytes()).hexdigest()  # noqa: S324
        files.append(entry)
    return {"files": files}


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()  # noqa: S324


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    root = tmp_path / "whisperx_container"
    write(root / "Dockerfile", "FROM debian\n")
    write(root / "run.sh", "#!/bin/sh\n", 0o755)
    write(root / "app/main.py", "print(1)\n")
    write(root / "app/__pycache__/main.cpython-311.pyc")
    write(root / "app/__pycache__/notes.txt")
    write(root / "app/stray.pyc")
    write(root / "app/old.pyo")
    write(root / ".pytest_cache/v/cache/nodeids")
    write(root / ".ruff_cache/0.1/x")
    write(root / "app/.mypy_cache/3.11/y.json")
    write(root / "certs/README.md", "certificates come from whisperx_extra_ca_certs\n")
    write(root / "certs/corp.crt", PEM)
    write(root / "certs/old/nested.crt", PEM)
    write(root / "app/certs/kept.crt", PEM)
    return root


# -- what the build context holds ---------------------------------------------------------------------------


def test_caches_and_byte_code_never_reach_the_context(wx, sources: Path):
    wanted = wx.context_wanted(find(sources), str(sources))
    assert not [p for p in wanted if "cache" in p or p.endswith((".pyc", ".pyo"))], wanted
    assert {"Dockerfile", "run.sh", "app", "app/main.py", "certs", "certs/README.md"} <= set(wanted)
    assert wanted["app"] == "dir 0755"
    assert wanted["run.sh"] == sha1("#!/bin/sh\n") + " 0755"
    assert wanted["Dockerfile"] == sha1("FROM debian\n") + " 0644"


@pytest.mark.parametrize(
    ("path", "junk"),
    [
        ("__pycache__", True),
        ("app/__pycache__/main.cpython-311.pyc", True),
        ("app/__pycache__/notes.txt", True),
        ("a/b/.pytest_cache/v", True),
        (".ruff_cache", True),
        ("x/.mypy_cache/y", True),
        ("app/mod.pyc", True),
        ("app/mod.pyo", True),
        ("app/mod.py", False),
        ("app/pycache_notes.txt", False),
        ("app/my__pycache__/x", False),
        ("app/mod.pyc.txt", False),
    ],
)
def test_the_junk_rule(wx, path: str, junk: bool):
    assert wx.is_junk(path) is junk


def test_the_sources_own_certificates_are_left_out_and_certs_readme_kept(wx, sources: Path):
    wanted = wx.context_wanted(find(sources), str(sources))
    assert "certs/corp.crt" not in wanted and "certs/old/nested.crt" not in wanted
    assert "certs/README.md" in wanted
    # Only the context's certs/ is the trust store's; elsewhere a .crt is just a source file.
    assert "app/certs/kept.crt" in wanted


def test_directories_contribute_their_crt_files_and_files_themselves(wx, sources: Path, tmp_path: Path):
    bundle = tmp_path / "ca"
    write(bundle / "b.crt", PEM + "b")
    write(bundle / "a.crt", PEM + "a")
    write(bundle / "ignored.pem", PEM)
    write(bundle / "sub/deeper.crt", PEM)
    proxy = write(tmp_path / "proxy.pem", PEM + "proxy")
    other = write(tmp_path / "other/c.crt", PEM + "c")
    # A trailing slash names the same directory.
    paths = [str(bundle) + "/", str(proxy), str(other.parent)]
    assert wx.ca_cert_files(paths) == [str(bundle / "a.crt"), str(bundle / "b.crt"), str(other), str(proxy)]
    assert wx.ca_certs(paths) == {
        "certs/a.crt": str(bundle / "a.crt"),
        "certs/b.crt": str(bundle / "b.crt"),
        "certs/c.crt": str(other),
        "certs/proxy.crt": str(proxy),
    }
    wanted = wx.context_wanted(find(sources), str(sources), paths)
    assert wanted["certs/proxy.crt"] == f"{sha1(PEM + 'proxy')} 0644"
    assert wanted["certs/a.crt"] == f"{sha1(PEM + 'a')} 0644"
    assert "certs/ignored.crt" not in wanted and "certs/deeper.crt" not in wanted


def test_a_home_relative_certificate_path_is_expanded(wx, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write(tmp_path / "corp.crt", PEM)
    assert wx.ca_certs(["~/corp.crt"]) == {"certs/corp.crt": str(tmp_path / "corp.crt")}


def test_the_archive_leaves_out_exactly_what_the_listing_leaves_out(wx, sources: Path):
    patterns = wx.archive_exclusions(str(sources))
    top = sources.name
    for entry in find(sources)["files"]:
        relative = str(Path(entry["path"]).relative_to(sources))
        excluded = any(fnmatch.fnmatch(f"{top}/{relative}", pattern) for pattern in patterns)
        assert excluded == (wx.is_junk(relative) or wx.is_context_cert(relative)), relative


# -- what shipping must do ----------------------------------------------------------------------------------


def shipped_copy(wx, sources: Path, host: Path, certs=()) -> dict:
    """The host's build directory holding exactly the wanted context."""
    wanted = wx.context_wanted(find(sources), str(sources), certs)
    for path, entry in wanted.items():
        source = wx.ca_certs(certs).get(path) or str(sources / path)
        target = host / path
        if entry.startswith("dir "):
            target.mkdir(parents=True, exist_ok=True)
        else:
            write(target, Path(source).read_text())
        target.chmod(int(entry.split(" ")[1], 8))
    return wanted


def test_an_identical_host_context_needs_nothing(wx, sources: Path, tmp_path: Path):
    host = tmp_path / "host"
    wanted = shipped_copy(wx, sources, host)
    write(host / "app/__pycache__/main.cpython-311.pyc")  # the host's own junk is ignored too
    diff = wx.context_diff(wanted, find(host), str(host), str(sources))
    assert diff == {"pending": [], "sources": [], "certs": [], "sources_differ": False, "stale": [], "differs": False}


def test_changed_files_are_pending_and_extra_ones_stale_deepest_first(wx, sources: Path, tmp_path: Path):
    host = tmp_path / "host"
    wanted = shipped_copy(wx, sources, host)
    write(host / "app/main.py", "print(2)\n")
    (host / "run.sh").chmod(0o644)
    (host / "Dockerfile").unlink()
    write(host / "old/gone.txt")
    write(host / "stale.txt")
    diff = wx.context_diff(wanted, find(host), str(host), str(sources))
    assert diff["pending"] == ["app/main.py", "Dockerfile", "run.sh"]
    assert [f["path"] for f in diff["sources"]] == ["app/main.py", "Dockerfile", "run.sh"]
    assert diff["sources"][2] == {
        "path": "run.sh",
        "src": str(sources / "run.sh"),
        "checksum": sha1("#!/bin/sh\n"),
        "mode": "0755",
    }
    assert diff["stale"] == ["stale.txt", "old/gone.txt", "old"]
    assert diff["sources_differ"] and diff["differs"]


def test_a_new_directory_alone_still_ships_the_sources(wx, sources: Path, tmp_path: Path):
    host = tmp_path / "host"
    shipped_copy(wx, sources, host)
    (sources / "empty").mkdir()
    wanted = wx.context_wanted(find(sources), str(sources))
    diff = wx.context_diff(wanted, find(host), str(host), str(sources))
    assert diff["pending"] == ["empty"] and diff["sources"] == [] and diff["sources_differ"]


def test_a_changed_certificate_alone_is_copied_without_the_sources(wx, sources: Path, tmp_path: Path):
    host, ca = tmp_path / "host", tmp_path / "ca"
    write(ca / "corp.crt", PEM)
    wanted = shipped_copy(wx, sources, host, [str(ca)])
    write(ca / "corp.crt", PEM + "renewed\n")
    wanted = wx.context_wanted(find(sources), str(sources), [str(ca)])
    diff = wx.context_diff(wanted, find(host), str(host), str(sources), [str(ca)])
    assert diff["certs"] == [
        {"path": "certs/corp.crt", "src": str(ca / "corp.crt"), "checksum": sha1(PEM + "renewed\n"), "mode": "0644"}
    ]
    assert not diff["sources_differ"] and diff["differs"]
    # A certificate dropped from whisperx_extra_ca_certs is stale on the host.
    diff = wx.context_diff(wx.context_wanted(find(sources), str(sources)), find(host), str(host), str(sources))
    assert diff["stale"] == ["certs/corp.crt"]


# -- the context hash (the image tag) ----------------------------------------------------------------------

# What the role's Jinja (vars/main.yml before the filters) made of this listing and these build arguments.
LISTING = {
    "files": [
        {"path": "/src/whisperx/Dockerfile", "checksum": "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567", "mode": "0644"},
        {"path": "/src/whisperx/app", "mode": "0755"},
        {"path": "/src/whisperx/app/main.py", "checksum": "1" * 40, "mode": "0644"},
        {"path": "/src/whisperx/app/__pycache__", "mode": "0755"},
        {"path": "/src/whisperx/app/__pycache__/main.cpython-311.pyc", "checksum": "2" * 40, "mode": "0644"},
        {"path": "/src/whisperx/certs", "mode": "0755"},
        {"path": "/src/whisperx/certs/README.md", "checksum": "3" * 40, "mode": "0644"},
        {"path": "/src/whisperx/certs/proxy.crt", "checksum": "4" * 40, "mode": "0644"},
        {"path": "/src/whisperx/run.sh", "checksum": "5" * 40, "mode": "0755"},
    ]
}
BUILD_ARGS = {"BASE_IMAGE": "spark-inference/debian:bookworm", "WHISPERX_EXTRA": "7"}
JINJA_HASH = "a56d8d6efd0f1d1f7de1a1705e9c00487da008f396b7abc8bf6070687faaa155"


def test_the_hash_is_the_one_the_role_always_computed(wx):
    wanted = wx.context_wanted(LISTING, "/src/whisperx")
    assert wx.context_hash(wanted, BUILD_ARGS) == JINJA_HASH


def test_the_hash_does_not_depend_on_the_order_of_files_or_arguments(wx):
    shuffled = {"files": random.sample(LISTING["files"], len(LISTING["files"]))}
    reversed_args = dict(reversed(BUILD_ARGS.items()))
    for _ in range(3):
        assert wx.context_hash(wx.context_wanted(shuffled, "/src/whisperx"), reversed_args) == JINJA_HASH


def test_the_hash_changes_with_a_file_its_mode_or_a_build_argument(wx):
    wanted = wx.context_wanted(LISTING, "/src/whisperx")
    hashes = {
        wx.context_hash(wanted, BUILD_ARGS),
        wx.context_hash({**wanted, "run.sh": f"{'5' * 40} 0644"}, BUILD_ARGS),
        wx.context_hash({**wanted, "app/new.py": f"{'6' * 40} 0644"}, BUILD_ARGS),
        wx.context_hash(wanted, {**BUILD_ARGS, "PIP_EXTRA_INDEX_URL": "https://download.pytorch.org/whl/cu128"}),
    }
    assert len(hashes) == 4


# -- the inputs ---------------------------------------------------------------------------------------------


@pytest.fixture
def good(tmp_path: Path, sources: Path) -> dict:
    token = write(tmp_path / "hf_token", "hf_x\n")
    return {
        "port": 8002,
        "memory": "40g",
        "memory_swap": "40g",
        "health_timeout": 1800,
        "model": "medium",
        "env": {},
        "hf_token_file": str(token),
        "source_dir": str(sources),
    }


def bundle(path: Path, *whisper: str) -> Path:
    models = [{"path": f"whisper-{m}"} for m in whisper] + [{"path": "campplus"}]
    write(path / "manifest.json", json.dumps({"version": 1, "models": models}))
    return path


def test_good_inputs_have_no_problem(wx, good: dict):
    assert wx.input_problems("present", "whisperx-asr", **good) == []
    assert wx.input_problems("present", "whisperx-asr", **{**good, "memory": "4096m", "memory_swap": "4g"}) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"container_name": "-bad name"},
            'whisperx_container_name "-bad name" is not a valid container name: use letters, digits, "_", "." and "-".',
        ),
        ({"port": 70000}, "whisperx_port must be a TCP port between 1 and 65535, not 70000."),
        ({"port": 0}, "whisperx_port must be a TCP port between 1 and 65535, not 0."),
        ({"memory": "lots"}, 'whisperx_memory "lots" is not a memory size: write it like 40g or 512m.'),
        (
            {"memory_swap": "x"},
            'whisperx_memory_swap "x" is not a memory size: write it like 40g, equal to whisperx_memory for no swap.',
        ),
        (
            {"memory": "2g", "memory_swap": "1g"},
            "whisperx_memory_swap (1g) is smaller than whisperx_memory (2g): set it equal to whisperx_memory for no"
            " swap.",
        ),
        ({"health_timeout": 0}, "whisperx_health_timeout must be a positive number of seconds, not 0."),
        (
            {"env": {"hf_token": "x"}},
            "whisperx_env must not carry HF_TOKEN: put the token in a file and set whisperx_hf_token_file.",
        ),
        (
            {"hf_token_file": "/nonexistent/token"},
            "whisperx_hf_token_file /nonexistent/token is not a readable file on the controller: write the Hugging"
            " Face token there or fix the path.",
        ),
        (
            {"hf_token_file": ""},
            "The diarization model (pyannote) is gated on Hugging Face: set whisperx_hf_token_file to a file holding"
            " a token that accepted its terms, or whisperx_model_bundle to an offline model bundle.",
        ),
        (
            {"model_bundle": "/nonexistent"},
            "whisperx_model_bundle /nonexistent has no manifest.json: point it at an offline model bundle (make"
            " models builds one).",
        ),
        (
            {"extra_ca_certs": ["/nonexistent/ca.crt"]},
            "whisperx_extra_ca_certs names /nonexistent/ca.crt, which does not exist on the controller: fix the path"
            " or drop it.",
        ),
        (
            {"source_dir": "/nonexistent"},
            "whisperx_source_dir /nonexistent holds no Dockerfile: point it at the service sources"
            " (whisperx_container/).",
        ),
    ],
)
def test_each_problem_is_one_sentence_saying_what_to_fix(wx, good: dict, change: dict, message: str):
    settings = {"container_name": "whisperx-asr", **good, **change}
    assert wx.input_problems("present", **settings) == [message]


def test_a_model_the_bundle_lacks_is_named_with_what_it_has(wx, good: dict, tmp_path: Path):
    models = bundle(tmp_path / "bundle", "tiny.en", "base")
    settings = {**good, "hf_token_file": "", "model_bundle": str(models)}
    assert wx.input_problems("present", "whisperx-asr", **{**settings, "model": "base"}) == []
    assert wx.input_problems("present", "whisperx-asr", **{**settings, "model": "small"}) == [
        f'whisperx_model "small" is not in the offline model bundle {models} (it has: base, tiny.en): choose one of'
        " those, or add it to the bundle."
    ]
    # WHISPER_MODEL in whisperx_env is what the service loads; a directory is not looked up in the bundle.
    assert (
        wx.input_problems("present", "whisperx-asr", **{**settings, "model": "small", "env": {"WHISPER_MODEL": "base"}})
        == []
    )
    directory = {**settings, "model": "small", "env": {"WHISPER_MODEL": "/models/custom"}}
    assert wx.input_problems("present", "whisperx-asr", **directory) == []


def test_certificates_must_be_pem_once_they_exist(wx, good: dict, tmp_path: Path):
    ca = tmp_path / "ca"
    write(ca / "good.crt", PEM)
    bad = write(tmp_path / "bad.crt", "not a certificate\n")
    assert wx.input_problems("present", "whisperx-asr", **{**good, "extra_ca_certs": [str(ca)]}) == []
    assert wx.input_problems("present", "whisperx-asr", **{**good, "extra_ca_certs": [str(ca), str(bad)]}) == [
        f"whisperx_extra_ca_certs: {ca / 'good.crt'}, {bad} must all be PEM certificates (-----BEGIN CERTIFICATE-----)."
    ]


def test_problems_come_in_order_and_absent_only_needs_a_container_name(wx, good: dict):
    bad = {**good, "port": -1, "source_dir": "/nonexistent"}
    problems = wx.input_problems("present", "a b", **bad)
    assert [p.split(" ")[0] for p in problems] == ["whisperx_container_name", "whisperx_port", "whisperx_source_dir"]
    assert wx.input_problems("absent", "whisperx-asr", **bad) == []
    assert len(wx.input_problems("absent", "a b")) == 1


def test_a_size_that_matches_the_format_but_not_ansibles_parser_is_an_error(wx, good: dict):
    with pytest.raises(AnsibleFilterError, match="2gb"):
        wx.input_problems("present", "whisperx-asr", **{**good, "memory": "1g", "memory_swap": "2gb"})


# -- the container ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gpus", "requests"),
    [
        ("", []),
        (None, []),
        ("none", []),
        ("NONE", []),
        ("0", []),
        (0, []),
        ("all", [{"driver": "nvidia", "count": -1, "capabilities": [["gpu"]]}]),
        ("2", [{"driver": "nvidia", "count": 2, "capabilities": [["gpu"]]}]),
        (3, [{"driver": "nvidia", "count": 3, "capabilities": [["gpu"]]}]),
        ("0,1", [{"driver": "nvidia", "device_ids": ["0", "1"], "capabilities": [["gpu"]]}]),
        (" 0, 1 ", [{"driver": "nvidia", "device_ids": ["0", "1"], "capabilities": [["gpu"]]}]),
    ],
)
def test_gpu_requests(wx, gpus, requests):
    assert wx.device_requests(gpus) == requests


def spec(wx, **change):
    settings = {
        "model": "medium",
        "gpus": "all",
        "memory": "40g",
        "memory_swap": "40g",
        "port": 8002,
        "bind_address": "0.0.0.0",  # noqa: S104
        "restart_policy": "unless-stopped",
        "models_volume": "whisperx-models",
        **change,
    }
    return wx.container_spec("spark-inference/whisperx-asr:ctx-0123456789ab", **settings)


def test_the_spec_of_a_gpu_install_with_a_token(wx):
    assert spec(wx, token_file="/home/spark/.config/whisperx/whisperx-asr.hf_token") == {
        "image": "spark-inference/whisperx-asr:ctx-0123456789ab",
        "env": {"WHISPER_MODEL": "medium", "WHISPERX_DEVICE": "cuda", "HF_TOKEN_FILE": "/run/secrets/hf_token"},
        "memory": "40g",
        "memory_swap": "40g",
        "published_ports": ["0.0.0.0:8002:8002"],
        "volumes": [
            "whisperx-models:/root/.cache/huggingface",
            "/home/spark/.config/whisperx/whisperx-asr.hf_token:/run/secrets/hf_token:ro",
        ],
        "device_requests": [{"driver": "nvidia", "count": -1, "capabilities": [["gpu"]]}],
        "restart_policy": "unless-stopped",
    }


def test_a_cpu_install_from_a_bundle_on_an_ipv6_address(wx):
    cpu = spec(wx, gpus="", bundle_dir="/home/spark/whisperx-model-bundle", bind_address="::1", port=9000)
    assert cpu["env"] == {"WHISPER_MODEL": "medium", "WHISPERX_DEVICE": "cpu", "WHISPERX_MODEL_BUNDLE": "/models"}
    assert cpu["volumes"] == [
        "whisperx-models:/root/.cache/huggingface",
        "/home/spark/whisperx-model-bundle:/models:ro",
    ]
    assert cpu["published_ports"] == ["[::1]:9000:8002"] and cpu["device_requests"] == []


def test_whisperx_env_wins_and_its_values_are_strings(wx):
    env = spec(wx, env={"WHISPERX_DEVICE": "auto", "WHISPERX_BATCH_SIZE": 8, "WHISPER_MODEL": "small"})["env"]
    assert env == {"WHISPER_MODEL": "small", "WHISPERX_DEVICE": "auto", "WHISPERX_BATCH_SIZE": "8"}


def test_with_gpus_the_service_must_load_on_cuda_unless_told_cpu(wx):
    assert wx.expected_device(spec(wx)) == "cuda"
    assert wx.expected_device(spec(wx, env={"WHISPERX_DEVICE": "auto"})) == "cuda"
    assert wx.expected_device(spec(wx, env={"WHISPERX_DEVICE": "CPU"})) == ""
    assert wx.expected_device(spec(wx, gpus="none")) == ""


def test_build_arguments(wx):
    index = "https://download.pytorch.org/whl/cu129"
    assert wx.build_args({}, base_image="deb:12", cuda_torch_index=index, gpus="all", architecture="x86_64") == {
        "BASE_IMAGE": "deb:12"
    }
    for arch in ("aarch64", "arm64"):
        assert wx.build_args({}, cuda_torch_index=index, gpus="1", architecture=arch) == {
            "PIP_EXTRA_INDEX_URL": index,
            "CTRANSLATE2_CUDA": "1",
        }
    assert wx.build_args({}, cuda_torch_index=index, gpus="", architecture="aarch64") == {}
    assert wx.build_args({}, cuda_torch_index="", gpus="all", architecture="aarch64") == {"CTRANSLATE2_CUDA": "1"}
    explicit = wx.build_args(
        {"PIP_EXTRA_INDEX_URL": "https://o", "N": 1}, cuda_torch_index=index, gpus="all", architecture="aarch64"
    )
    assert explicit == {"PIP_EXTRA_INDEX_URL": "https://o", "CTRANSLATE2_CUDA": "1", "N": "1"}
    for off in (False, "false", "no"):
        assert wx.build_args({}, gpus="all", architecture="aarch64", ctranslate2_cuda=off) == {}
    forced = wx.build_args({}, gpus="all", architecture="x86_64", ctranslate2_cuda=True,
                           ctranslate2_builder_image="cuda:devel", cuda_arch_list="12.1")  # fmt: skip
    assert forced == {"CTRANSLATE2_CUDA": "1", "CT2_BUILDER_IMAGE": "cuda:devel", "CUDA_ARCH_LIST": "12.1"}


def test_the_health_url_is_what_the_host_itself_reaches(wx):
    assert wx.health_url("0.0.0.0", 8002) == "http://127.0.0.1:8002/health"  # noqa: S104
    assert wx.health_url("::", 18102) == "http://127.0.0.1:18102/health"
    assert wx.health_url("192.168.50.11", 8002) == "http://192.168.50.11:8002/health"
    assert wx.health_url("::1", 8002) == "http://[::1]:8002/health"


def test_host_paths_and_the_owner_of_the_build_context(wx):
    facts = {"user_dir": "/home/spark", "user_id": "spark", "user_gid": 1000}
    own = wx.host_layout(facts, "~/whisperx-build", "~/bundle", "whisperx-asr")
    assert own == {
        "home": "/home/spark",
        "build_dir": "/home/spark/whisperx-build",
        "bundle_dir": "/home/spark/bundle",
        "secrets_dir": "/home/spark/.config/whisperx",
        "token_path": "/home/spark/.config/whisperx/whisperx-asr.hf_token",
        "rollback_path": "/home/spark/.config/whisperx/whisperx-asr.rollback.json",
        "api_key_path": "",
        "build_owner": "spark",
        "build_group": 1000,
        "become": False,
    }
    keyed = wx.host_layout(facts, "~/b", "~/m", "wx", api_key_file="~/.config/whisperx/wx.api_key")
    assert keyed["api_key_path"] == "/home/spark/.config/whisperx/wx.api_key"
    root = wx.host_layout(facts, "/srv/build", "~", "w", owner="root")
    assert (root["build_dir"], root["bundle_dir"], root["build_owner"], root["build_group"], root["become"]) == (
        "/srv/build",
        "/home/spark",
        "root",
        "root",
        True,
    )
    assert wx.host_layout(facts, "~spark/x", "~", "w", owner="spark")["build_dir"] == "~spark/x"


def test_only_older_unused_tags_of_this_role_are_prunable(wx):
    engine = {
        "images": [
            {"Id": "current", "RepoTags": ["test/whisperx:ctx-000000000000"]},
            {"Id": "previous", "RepoTags": ["test/whisperx:ctx-111111111111"]},
            {"Id": "old", "RepoTags": ["test/whisperx:ctx-222222222222"]},
            {"Id": "used", "RepoTags": ["test/whisperx:ctx-333333333333"]},
            {"Id": "two-tags", "RepoTags": ["test/whisperx:ctx-444444444444", "test/whisperx:latest"]},
            {"Id": "other-repo", "RepoTags": ["test/whisperx-other:ctx-555555555555"]},
            {"Id": "not-ctx", "RepoTags": ["test/whisperx:cpu", "test/whisperx:ctx-66"]},
            {"Id": "untagged", "RepoTags": None},
        ],
        "containers": [{"Id": "another-installation", "ImageID": "used"}],
    }
    keep = ["test/whisperx:ctx-000000000000", "test/whisperx:ctx-111111111111"]
    assert wx.prunable_images(engine, "test/whisperx", keep=keep) == [
        "test/whisperx:ctx-222222222222",
        "test/whisperx:ctx-444444444444",
    ]


def test_a_skipped_listing_has_nothing_to_prune(wx):
    assert wx.prunable_images({"changed": False, "skipped": True}, "test/whisperx") == []


def test_every_filter_is_documented_beside_the_plugin(wx):
    sc = load_plugin("plugins/filter/spark_control.py", "spark_control_filters")
    names = set(wx.FilterModule().filters()) | set(sc.FilterModule().filters())
    documented = {p.stem for p in (REPO / "plugins/filter").glob("*.yml")}
    assert names == documented


def test_the_api_key_reaches_the_container_as_a_mounted_file_and_only_its_path_in_the_spec(wx):
    spec = wx.container_spec(
        "img:ctx-1", "tiny.en", "", "4g", "4g", 8002, "127.0.0.1", "unless-stopped", "whisperx-models",
        api_key_file="/home/spark/.config/whisperx/wx.api_key",
    )  # fmt: skip
    assert "/home/spark/.config/whisperx/wx.api_key:/run/secrets/api_key:ro" in spec["volumes"]
    assert spec["env"]["WHISPERX_API_KEY_FILE"] == "/run/secrets/api_key"
    open_spec = wx.container_spec("img:ctx-1", "tiny.en", "", "4g", "4g", 8002, "127.0.0.1", "no", "v")
    assert "WHISPERX_API_KEY_FILE" not in open_spec["env"] and not any("api_key" in v for v in open_spec["volumes"])


@pytest.mark.parametrize(
    "env",
    [
        {"NGC_API_KEY_COPY": "nvapi-AbCdEf0123456789xyz"},
        {"WHISPERX_SOMETHING": "Zq8" * 12},
        {"MY_SECRET": "value-of-the-secret"},
        {"DB_PASSWORD": "hunter2"},
    ],
)
def test_secrets_in_the_container_env_are_refused_by_name_or_by_shape(wx, env):
    problems = wx.input_problems("present", "wx", env=env, hf_token="hf_x", source_dir=str(REPO / "whisperx_container"))
    assert problems and problems[0].startswith(f"whisperx_env must not carry secrets ({next(iter(env))})")
    assert "docker inspect" in problems[0] and next(iter(env.values())) not in problems[0]


def test_plain_env_values_pass(wx):
    env = {"WHISPERX_BATCH_SIZE": "8", "WHISPERX_DEVICE": "cuda", "WHISPERX_WINDOW_S": "600"}
    source = str(REPO / "whisperx_container")
    assert wx.input_problems("present", "wx", env=env, hf_token="hf_x", source_dir=source) == []


def test_the_role_and_spark_control_refuse_the_same_secret_shapes(wx):
    from spark_control.config import looks_like_a_secret, names_a_secret

    samples = ["hf_abcdefghijklmnop", "nvapi-0123456789abc", "sk-proj0123456789", "AKIA0123456789ABCDEF", "Zq8" * 12,
               "8", "cuda", "int8_float16", "/models/whisper-base", "large-v3", "a" * 40]  # fmt: skip
    for value in samples:
        assert wx.carries_a_secret("X", value) == looks_like_a_secret(value), value
    for name in ("HF_TOKEN", "MY_SECRET", "DB_PASSWD", "AWS_CREDENTIALS", "WHISPERX_DEVICE"):
        assert wx.carries_a_secret(name, "x") == names_a_secret(name), name


def test_a_rollback_after_a_cancel_needs_only_a_valid_container_name(wx):
    assert wx.input_problems("previous", "whisperx-asr") == []
    assert wx.input_problems("previous", "bad name!")[0].startswith('whisperx_container_name "bad name!"')


# -- spark.inference.spark_control ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sc():
    return load_plugin("plugins/filter/spark_control.py", "spark_control_filters")


def test_spark_control_gets_the_contract_settings_and_its_secrets_as_paths_only(sc):
    settings = {"spark2_host": "192.168.50.12", "spark2_user": "spark", "whisperx_host": "", "whisperx_port": 8002}
    env = sc.spark_control_env(settings, port=8080, extra={"SPARK_CONTROL_WATCHDOG": "false"}, ssh_key=True)
    assert env == {
        "SPARK2_HOST": "192.168.50.12",
        "SPARK2_USER": "spark",
        "WHISPERX_PORT": "8002",
        "SPARK_CONTROL_WATCHDOG": "false",
        "SPARK_CONTROL_PORT": "8080",
        "SPARK_CONTROL_API_TOKEN_FILE": "/run/secrets/api_token",
        "SPARK_CONTROL_SSH_KEY": "/run/secrets/ssh_key",
    }
    assert sc.spark_control_env({}, hf_token=True)["HF_TOKEN_FILE"] == "/run/secrets/hf_token"


def test_several_whisperx_hosts_reach_spark_control_only_when_set(sc):
    hosts = "192.168.50.11,192.168.50.12:8010"
    assert sc.spark_control_env({"whisperx_hosts": hosts})["WHISPERX_HOSTS"] == hosts
    assert "WHISPERX_HOSTS" not in sc.spark_control_env({"whisperx_hosts": ""})


def test_spark_control_inputs_are_checked(sc):
    assert sc.spark_control_input_problems("present", spark2_host="s2", ssh_key_file="~/.ssh/key") == []
    assert sc.spark_control_input_problems("absent") == []
    assert sc.spark_control_input_problems("present", ssh_key_file="k")[0].startswith("spark_control_spark2_host is")
    assert "spark_control_ssh_key_file is empty" in sc.spark_control_input_problems("present", spark2_host="s2")[0]
    leaky = sc.spark_control_input_problems(
        "present", spark2_host="s2", ssh_key_file="k", extra={"NGC_KEY": "nvapi-x" * 3}
    )
    assert leaky[0].startswith("spark_control_env must not carry secrets (NGC_KEY)") and "nvapi" not in leaky[0]
