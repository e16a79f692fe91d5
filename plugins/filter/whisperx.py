# Copyright (c) spark-inference developers
# Apache License 2.0 (see galaxy.yml)
"""The decisions of the role spark.inference.whisperx, as filters (documentation: the .yml files beside this).

Each rule is stated once here: what the build context holds (the listing, the junk it leaves out, the
certificates), how it compares with the host's copy, its hash (the image tag), the problems with the inputs,
and the container's settings. The role's task files only call these filters; tests/role/test_filters.py
tests them without Ansible running.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.formatters import human_to_bytes

# -- the build context ------------------------------------------------------------------------------------
# Never part of the context: caches and byte code, wherever they are.
JUNK_DIRS = ("__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache")
JUNK_SUFFIXES = (".pyc", ".pyo")
# The context's certificates directory: its *.crt files come from whisperx_extra_ca_certs only, never
# from the sources (the service's Dockerfile copies certs/*.crt into the image's trust store).
CERTS_DIR = "certs"
CERT_SUFFIX = ".crt"
CERT_MODE = "0644"
# A directory's entry in a listing, where a file has its checksum.
DIR = "dir"


def is_junk(path):
    """True for a context path (relative, "/"-separated) that is a cache or byte code."""
    return any(part in JUNK_DIRS for part in path.split("/")) or path.endswith(JUNK_SUFFIXES)


def is_context_cert(path):
    """True for a context path under certs/ ending in .crt: a CA certificate's place in the context."""
    return path.startswith(CERTS_DIR + "/") and path.endswith(CERT_SUFFIX)


def listing(find_result, root):
    """{path relative to root: "sha1 mode", or "dir mode" for a directory} from ansible.builtin.find."""
    return {
        os.path.relpath(entry["path"], root): f"{entry.get('checksum', DIR)} {entry['mode']}"
        for entry in find_result["files"]
    }


def ca_cert_files(paths):
    """The certificate files whisperx_extra_ca_certs names: a directory's *.crt files, a file itself."""
    paths = [os.path.expanduser(p) for p in paths]
    in_dirs = (glob.glob(os.path.join(glob.escape(p.rstrip("/") or "/"), "*" + CERT_SUFFIX)) for p in paths)
    found = _sorted(f for files in in_dirs for f in files if os.path.isfile(f))
    return found + [p for p in paths if not os.path.isdir(p)]


def ca_certs(paths):
    """{context path: controller path} of the CA certificates; certs/<name>.crt whatever the file's suffix."""
    return {f"{CERTS_DIR}/{os.path.splitext(os.path.basename(f))[0]}{CERT_SUFFIX}": f for f in ca_cert_files(paths)}


def _sorted(items, reverse=False):
    """Sorted as Jinja's sort filter sorts strings (ignoring case), so lists read as they always have."""
    return sorted(items, key=str.lower, reverse=reverse)


def _sha1(path):
    with open(path, "rb") as stream:
        return hashlib.sha1(stream.read()).hexdigest()  # noqa: S324 - the checksum find and stat report


def context_wanted(source_find, source_dir, extra_ca_certs=()):
    """{path: "sha1 mode"} the build context must hold: the sources, less junk and their own certificates,
    plus the CA certificates."""
    wanted = {
        path: entry
        for path, entry in listing(source_find, source_dir).items()
        if not is_junk(path) and not is_context_cert(path)
    }
    for path, src in ca_certs(extra_ca_certs).items():
        wanted[path] = f"{_sha1(src)} {CERT_MODE}"
    return wanted


def context_diff(wanted, shipped_find, build_dir, source_dir, extra_ca_certs=()):
    """What shipping must do so that the host's build context equals `wanted`."""
    shipped = {path: entry for path, entry in listing(shipped_find, build_dir).items() if not is_junk(path)}
    pending = [
        entry.split("::")[0]
        for entry in _sorted(f"{path}::{entry}" for path, entry in wanted.items() if shipped.get(path) != entry)
    ]
    certs = ca_certs(extra_ca_certs)
    files, cert_files = [], []
    for path in pending:
        checksum, mode = wanted[path].split(" ")
        if is_context_cert(path):
            cert_files.append({"path": path, "src": certs[path], "checksum": checksum, "mode": mode})
        elif checksum != DIR:
            files.append({"path": path, "src": os.path.join(source_dir, path), "checksum": checksum, "mode": mode})
    stale = _sorted((path for path in shipped if path not in wanted), reverse=True)
    return {
        "pending": pending,
        "sources": files,
        "certs": cert_files,
        # Any source entry (a directory too) differs: the sources go as one archive.
        "sources_differ": any(not is_context_cert(path) for path in pending),
        "stale": stale,
        "differs": bool(pending or stale),
    }


def context_hash(wanted, build_args):
    """sha256 of the context listing and the build arguments (the image is tagged ctx-<first 12>)."""
    data = json.dumps({"context": wanted, "build_args": build_args}, sort_keys=True)
    return hashlib.sha256(data.encode("utf-8", errors="surrogateescape")).hexdigest()


def archive_exclusions(source_dir):
    """community.general.archive exclusion_patterns (fnmatch on archive paths, "<dir name>/...") that leave
    out of an archive of source_dir exactly what the listing leaves out."""
    top = glob.escape(os.path.basename(os.path.normpath(source_dir)))
    patterns = [pattern for name in JUNK_DIRS for pattern in (f"*/{name}", f"*/{name}/*")]
    patterns += [f"*{suffix}" for suffix in JUNK_SUFFIXES]
    patterns.append(f"{top}/{CERTS_DIR}/*{CERT_SUFFIX}")
    return patterns


# -- inputs -----------------------------------------------------------------------------------------------
CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
MEMORY_SIZE = re.compile(r"[0-9]+(\.[0-9]+)?([kmgtKMGT][bB]?|[bB])?$")
PEM_MARKER = b"BEGIN CERTIFICATE"


def _int(value):
    """Jinja's int filter: the number, or 0 for what is none."""
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return 0


def _bytes(size):
    try:
        return human_to_bytes(size)
    except Exception as exc:
        raise AnsibleFilterError(f"human_to_bytes() can't interpret {size!r}: {exc}") from exc


def bundle_whisper_models(bundle):
    """The Whisper models an offline bundle's manifest lists (whisper-<name>/ directories), sorted."""
    with open(os.path.join(os.path.expanduser(bundle), "manifest.json")) as stream:
        models = json.load(stream)["models"]
    return _sorted(m["path"][len("whisper-") :] for m in models if m["path"].startswith("whisper-"))


# A name that says it holds a secret, or a value shaped like a credential: a known token prefix (Hugging Face,
# NVIDIA NGC, OpenAI, GitHub, Slack, AWS) or a long unbroken run of letters and digits such as a generated key.
# spark-control refuses the same in WHISPERX_ENV (spark_control/config.py; a test keeps the two in step).
SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL")
SECRET_VALUE = re.compile(
    r"(hf_|nvapi-|sk-|ghp_|gho_|github_pat_|xox[abp]-|AKIA)[A-Za-z0-9_\-]{8,}"
    r"|(?=.*[0-9])(?=.*[A-Za-z])[A-Za-z0-9+=_\-]{32,}"
)


def carries_a_secret(name, value):
    return any(word in name.upper() for word in SECRET_WORDS) or bool(SECRET_VALUE.fullmatch(value.strip()))


def input_problems(
    state,
    container_name,
    port=8002,
    memory="40g",
    memory_swap="40g",
    health_timeout=1800,
    model="medium",
    env=None,
    hf_token="",
    hf_token_file="",
    model_bundle="",
    extra_ca_certs=(),
    source_dir="",
):
    """Every problem with the inputs, as a sentence saying what to fix; the first one ends the play.

    whisperx_state=absent (and previous, putting back what a canceled install replaced) needs only a valid
    container name.
    """
    env = env or {}
    problems = []
    if not CONTAINER_NAME.match(str(container_name)):
        problems.append(
            f'whisperx_container_name "{container_name}" is not a valid container name: use letters, digits,'
            ' "_", "." and "-".'
        )
    if state in ("absent", "previous"):
        return problems
    if not 1 <= _int(port) <= 65535:
        problems.append(f"whisperx_port must be a TCP port between 1 and 65535, not {port}.")
    memory_ok = bool(MEMORY_SIZE.match(str(memory)))
    swap_ok = bool(MEMORY_SIZE.match(str(memory_swap)))
    if not memory_ok:
        problems.append(f'whisperx_memory "{memory}" is not a memory size: write it like 40g or 512m.')
    if not swap_ok:
        problems.append(
            f'whisperx_memory_swap "{memory_swap}" is not a memory size: write it like 40g, equal to'
            " whisperx_memory for no swap."
        )
    if memory_ok and swap_ok and _bytes(memory_swap) < _bytes(memory):
        problems.append(
            f"whisperx_memory_swap ({memory_swap}) is smaller than whisperx_memory ({memory}): set it equal to"
            " whisperx_memory for no swap."
        )
    if _int(health_timeout) < 1:
        problems.append(f"whisperx_health_timeout must be a positive number of seconds, not {health_timeout}.")
    if "HF_TOKEN" in (str(key).upper() for key in env):
        problems.append("whisperx_env must not carry HF_TOKEN: put the token in a file and set whisperx_hf_token_file.")
    elif secret := sorted(str(key) for key, value in env.items() if carries_a_secret(str(key), str(value))):
        problems.append(
            f"whisperx_env must not carry secrets ({', '.join(secret)}): the container's environment is stored in its"
            " spec label and shown by docker inspect. Give the service secrets as files."
        )
    if hf_token_file and not os.path.isfile(os.path.expanduser(hf_token_file)):
        problems.append(
            f"whisperx_hf_token_file {hf_token_file} is not a readable file on the controller: write the Hugging"
            " Face token there or fix the path."
        )
    manifest = os.path.join(os.path.expanduser(model_bundle), "manifest.json") if model_bundle else ""
    if model_bundle and not os.path.isfile(manifest):
        problems.append(
            f"whisperx_model_bundle {model_bundle} has no manifest.json: point it at an offline model bundle"
            " (make models builds one)."
        )
    served = service_env(model, "", env)["WHISPER_MODEL"]
    if model_bundle and os.path.isfile(manifest) and not str(served).startswith("/"):
        available = bundle_whisper_models(model_bundle)
        if served not in available:
            problems.append(
                f'whisperx_model "{model}" is not in the offline model bundle {model_bundle} (it has:'
                f" {', '.join(available) or 'none'}): choose one of those, or add it to the bundle."
            )
    if not (hf_token or hf_token_file or model_bundle):
        problems.append(
            "The diarization model (pyannote) is gated on Hugging Face: set whisperx_hf_token_file to a file"
            " holding a token that accepted its terms, or whisperx_model_bundle to an offline model bundle."
        )
    missing = [p for p in (os.path.expanduser(p) for p in extra_ca_certs) if not os.path.exists(p)]
    if missing:
        problems.append(
            f"whisperx_extra_ca_certs names {', '.join(missing)}, which does not exist on the controller: fix the"
            " path or drop it."
        )
    if not os.path.isfile(os.path.join(source_dir, "Dockerfile")):
        problems.append(
            f"whisperx_source_dir {source_dir} holds no Dockerfile: point it at the service sources"
            " (whisperx_container/)."
        )
    # Checked once the paths above exist: every certificate file must be PEM.
    if not missing:
        files = ca_cert_files(extra_ca_certs)
        if any(PEM_MARKER not in _read(f) for f in files):
            problems.append(
                f"whisperx_extra_ca_certs: {', '.join(files)} must all be PEM certificates"
                " (-----BEGIN CERTIFICATE-----)."
            )
    return problems


def _read(path):
    with open(path, "rb") as stream:
        return stream.read()


# -- the host ---------------------------------------------------------------------------------------------
def host_layout(facts, build_dir, bundle_dest, container_name, owner="", api_key_file=""):
    """Paths on the host ("~" is the SSH user's home) and who owns the shipped build context.

    `api_key_path` is "" when the service runs without an API key (whisperx_api_key_file "")."""
    home = facts["user_dir"]

    def on_host(path):
        return re.sub(r"^~(?=/|$)", lambda _: home, path)

    user = facts["user_id"]
    build_owner = owner or user
    become = build_owner != user
    secrets_dir = f"{home}/.config/whisperx"
    return {
        "home": home,
        "build_dir": on_host(build_dir),
        "bundle_dir": on_host(bundle_dest),
        "secrets_dir": secrets_dir,
        "token_path": f"{secrets_dir}/{container_name}.hf_token",
        # The container an install is about to replace (start.yml), for putting it back after a cancel.
        "rollback_path": f"{secrets_dir}/{container_name}.rollback.json",
        "api_key_path": on_host(api_key_file) if api_key_file else "",
        "build_owner": build_owner,
        # Another owner's group of the same name (as root:root); the SSH user's own primary group.
        "build_group": build_owner if become else facts["user_gid"],
        # sudo only when the build context must belong to someone else than the SSH user.
        "become": become,
    }


# -- the image and the container --------------------------------------------------------------------------
HF_CACHE = "/root/.cache/huggingface"
BUNDLE_MOUNT = "/models"
TOKEN_MOUNT = "/run/secrets/hf_token"  # noqa: S105 - where the token file is mounted, not a token
API_KEY_MOUNT = "/run/secrets/api_key"
JOBS_MOUNT = "/jobs"  # the service's default WHISPERX_JOBS_DIR
SERVICE_PORT = 8002
ARM_ARCHITECTURES = ("aarch64", "arm64")


def _gpus(gpus):
    return str(gpus or "").strip()


def device_requests(gpus):
    """docker_container device_requests for whisperx_gpus: all, a count ("2"), device ids ("0,1"); none for
    "", "none" and "0"."""
    gpus = _gpus(gpus)
    if gpus.lower() in ("", "none", "0"):
        return []
    if gpus == "all":
        return [{"driver": "nvidia", "count": -1, "capabilities": [["gpu"]]}]
    if re.fullmatch(r"[0-9]+", gpus):
        return [{"driver": "nvidia", "count": int(gpus), "capabilities": [["gpu"]]}]
    return [{"driver": "nvidia", "device_ids": [i.strip() for i in gpus.split(",")], "capabilities": [["gpu"]]}]


def build_args(extra, base_image="", cuda_torch_index="", gpus="", architecture="", ctranslate2_cuda="auto",
               ctranslate2_builder_image="", cuda_arch_list=""):  # fmt: skip
    """The image's build arguments; `extra` (whisperx_build_args) wins over the role's own."""
    args = {"BASE_IMAGE": base_image} if base_image else {}
    arm_gpus = bool(device_requests(gpus)) and (architecture or "") in ARM_ARCHITECTURES
    # PyPI's aarch64 torch is CPU-only, so with GPUs on aarch64 pip also reads PyTorch's CUDA index.
    if arm_gpus and cuda_torch_index:
        args["PIP_EXTRA_INDEX_URL"] = cuda_torch_index
    # PyPI's aarch64 CTranslate2 is CPU-only too: the Dockerfile's first stage compiles it with CUDA.
    wanted = str(ctranslate2_cuda).strip().lower()
    if wanted in ("true", "yes", "1", "on") or (wanted == "auto" and arm_gpus):
        args["CTRANSLATE2_CUDA"] = "1"
        if ctranslate2_builder_image:
            args["CT2_BUILDER_IMAGE"] = ctranslate2_builder_image
        if cuda_arch_list:
            args["CUDA_ARCH_LIST"] = cuda_arch_list
    args.update({key: str(value) for key, value in (extra or {}).items()})
    return args


def service_env(model, gpus, extra=None, token_file="", bundle_dir="", api_key_file=""):
    env = {"WHISPER_MODEL": model, "WHISPERX_DEVICE": "cuda" if device_requests(gpus) else "cpu"}
    if token_file:
        env["HF_TOKEN_FILE"] = TOKEN_MOUNT
    if api_key_file:
        env["WHISPERX_API_KEY_FILE"] = API_KEY_MOUNT
    if bundle_dir:
        env["WHISPERX_MODEL_BUNDLE"] = BUNDLE_MOUNT
    env.update({key: str(value) for key, value in (extra or {}).items()})
    return env


def published_address(bind_address):
    return f"[{bind_address}]" if ":" in bind_address else bind_address


def container_spec(
    image,
    model,
    gpus,
    memory,
    memory_swap,
    port,
    bind_address,
    restart_policy,
    models_volume,
    env=None,
    token_file="",
    bundle_dir="",
    api_key_file="",
    jobs_volume="",
):
    """Everything the container is run with; stored as a label so a rollback can recreate it exactly.

    Secrets reach the container only as files mounted read-only (their paths are in the spec, never them).
    `jobs_volume` holds the durable jobs (WHISPERX_JOBS_DIR), so they outlive the container."""
    volumes = [f"{models_volume}:{HF_CACHE}"]
    if jobs_volume:
        volumes.append(f"{jobs_volume}:{JOBS_MOUNT}")
    if bundle_dir:
        volumes.append(f"{bundle_dir}:{BUNDLE_MOUNT}:ro")
    if token_file:
        volumes.append(f"{token_file}:{TOKEN_MOUNT}:ro")
    if api_key_file:
        volumes.append(f"{api_key_file}:{API_KEY_MOUNT}:ro")
    return {
        "image": image,
        "env": service_env(model, gpus, env, token_file, bundle_dir, api_key_file),
        "memory": memory,
        "memory_swap": memory_swap,
        "published_ports": [f"{published_address(bind_address)}:{port}:{SERVICE_PORT}"],
        "volumes": volumes,
        "device_requests": device_requests(gpus),
        "restart_policy": restart_policy,
    }


def expected_device(spec):
    """The device /health must report: cuda with GPUs unless the operator chose the CPU; "" for any."""
    if spec["device_requests"] and str(spec["env"].get("WHISPERX_DEVICE", "")).lower() != "cpu":
        return "cuda"
    return ""


def health_url(bind_address, port):
    """/health as the host itself reaches the published port."""
    address = "127.0.0.1" if bind_address in ("0.0.0.0", "::", "[::]", "") else published_address(bind_address)  # noqa: S104
    return f"http://{address}:{port}/health"


def prunable_images(engine, image_name, keep=()):
    """Tags <image_name>:ctx-<12 hex> that docker_host_info listed, less `keep` and those a container uses."""
    # A skipped listing (nothing to prune: the image did not change) has neither key.
    in_use = {container["ImageID"] for container in engine.get("containers", [])}
    own_tag = re.compile(re.escape(image_name) + r":ctx-[0-9a-f]{12}")
    tags = (
        tag for image in engine.get("images", []) if image["Id"] not in in_use for tag in image.get("RepoTags") or []
    )
    return _sorted(tag for tag in tags if own_tag.fullmatch(tag) and tag not in keep)


class FilterModule:
    def filters(self):
        return {
            "whisperx_context_wanted": context_wanted,
            "whisperx_context_diff": context_diff,
            "whisperx_context_hash": context_hash,
            "whisperx_archive_exclusions": archive_exclusions,
            "whisperx_input_problems": input_problems,
            "whisperx_host_layout": host_layout,
            "whisperx_build_args": build_args,
            "whisperx_device_requests": device_requests,
            "whisperx_container_spec": container_spec,
            "whisperx_expected_device": expected_device,
            "whisperx_health_url": health_url,
            "whisperx_prunable_images": prunable_images,
        }
