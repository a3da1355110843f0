"""The Docker image, built from the repository's Dockerfile with podman and run for real.

The Dockerfile is built unchanged against local stand-ins for its base images
(tests/container_images.py), then run as docs/server.md shows, with host networking and a free
port, over the session's phantom catalog mounted read-only at /data. Its answers are compared
byte for byte with `mamamia serve` run outside the container on the same catalog.
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conftest import free_port
from container_images import (
    CONTAINERS_CONF,
    ContainerToolMissing,
    Podman,
    ensure_stand_ins,
    find_podman,
    image_size,
    run_python,
)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "server.md"
IMAGE = "localhost/mamamia-test:latest"
BUILD_STAGE = "localhost/mamamia-test-build:latest"
#: Both servers sign cursors with it, so their pages are byte-identical.
CURSOR_SECRET = "container-test-cursor-secret"
UNPRIVILEGED_UID = 10001
WHERE = "dataset IN ('DUKE', 'NACT') OR age < 60"

# A cold first run builds the stand-ins (debootstrap) and the image (wheels from PyPI).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


@dataclass(frozen=True)
class Running:
    name: str
    url: str


def test_documented_containers_conf_is_the_one_used() -> None:
    (printf,) = [c for c in _documented("printf ") if c[-2:] == [">", "containers.conf"]]
    assert printf[1].replace("\\n", "\n") == CONTAINERS_CONF


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    try:
        return find_podman(tmp_path_factory.mktemp("podman"))
    except ContainerToolMissing as missing:
        pytest.fail(str(missing), pytrace=False)


@pytest.fixture(scope="module")
def image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> str:
    ensure_stand_ins(podman, ROOT / "Dockerfile", tmp_path_factory.mktemp("stand-ins"))
    previous = {tag: podman.image_id(tag) for tag in (IMAGE, BUILD_STAGE)}
    (build,) = _documented("podman build --isolation")
    podman(*[IMAGE if a == "mamamia" else str(ROOT) if a == "." else a for a in build[1:]])
    # Naming the build stage keeps its layers as the cache of the next run; the images this
    # build replaced are removed, so repeated runs do not pile up image layers.
    podman.build(ROOT, BUILD_STAGE, "--target", "build")
    for tag, old in previous.items():
        if old is not None and old != podman.image_id(tag):
            podman("rmi", old, check=False)
    return IMAGE


def _commands(doc: Path, *starts: str) -> list[list[str]]:
    """The commands of a Markdown file that start with one of ``starts``, split as the shell
    does (continued lines joined, a console's ``$ `` prompt dropped, nothing expanded)."""
    lines = doc.read_text().replace("\\\n", " ").splitlines()
    lines = [line.strip().removeprefix("$ ") for line in lines]
    return [shlex.split(line) for line in lines if line.startswith(starts)]


def _documented(prefix: str) -> list[list[str]]:
    found = _commands(DOCS, prefix)
    assert found, f"docs/server.md has no `{prefix}` command"
    return found


#: Every `docker run` and `podman run` the README and docs/server.md show.
DOCUMENTED_RUNS = [
    (f"{doc.name}:{n}", argv)
    for doc in (ROOT / "README.md", DOCS)
    for n, argv in enumerate(_commands(doc, "docker run ", "podman run "))
]


def _runnable(argv: list[str], name: str, port: int, paths: dict[str, Path]) -> list[str]:
    """A documented `docker run` or `podman run` made runnable here with podman: detached, its
    own name, a free port (published, or given to the server on the host's network), the test's
    files for ``$PWD/...``, one cursor secret."""
    out = ["run", "--detach", "--name", name, f"--env=MAMAMIA_SERVER_CURSOR_SECRET={CURSOR_SECRET}"]
    skip = False
    for before, arg in itertools.pairwise(argv[1:]):
        if skip:
            skip = False
            continue
        if arg in ("--rm", "-d", "--detach"):
            continue  # a removed container would take its logs with it
        if arg == "--name":
            skip = True
            continue
        if before in ("-p", "--publish"):
            arg = f"{port}:{arg.split(':')[-1]}"
        elif before == "--port" and "--network=host" in argv:
            arg = str(port)
        elif arg == "mamamia":
            arg = IMAGE
        for documented, real in paths.items():
            arg = arg.replace(f"$PWD/{documented}", str(real))
        out.append(arg)
    assert "$" not in "".join(out), out
    return out


def _wait_for_health(url: str, alive: object, what: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if callable(alive) and not alive():
            raise RuntimeError(f"{what} exited before answering /v1/health")
        try:
            if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{what} did not answer /v1/health on {url}")


@contextmanager
def _started(podman: Podman, argv: list[str], paths: dict[str, Path]) -> Iterator[Running]:
    port = free_port()
    name = f"mamamia-test-{os.getpid()}-{port}"
    podman(*_runnable(argv, name, port, paths))

    def alive() -> bool:
        state = podman("inspect", "--format", "{{.State.Running}}", name, check=False)
        return state.stdout.strip() == "true"

    try:
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_for_health(url, alive, f"container {name}")
        except RuntimeError as error:
            logs = podman("logs", name, check=False)
            raise RuntimeError(f"{error}\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}") from None
        yield Running(name=name, url=url)
    finally:
        podman("rm", "--force", "--time", "2", name, check=False)


@pytest.fixture(scope="module")
def container(podman: Podman, image: str, catalog_dir: Path) -> Iterator[Running]:
    """The image run as docs/server.md shows: catalog at /data, read-only, host network."""
    (run,) = [c for c in _documented("podman run -d") if "/run/secrets/" not in " ".join(c)]
    with _started(podman, run, {"demo/catalog": catalog_dir}) as running:
        yield running


@pytest.fixture(scope="module")
def outside(catalog_dir: Path) -> Iterator[str]:
    """`mamamia serve` from the development environment on the same catalog."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMAMIA_SERVER_")}
    env["MAMAMIA_SERVER_CURSOR_SECRET"] = CURSOR_SECRET
    command = [str(Path(sys.executable).with_name("mamamia")), "serve", str(catalog_dir)]
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_for_health(url, lambda: process.poll() is None, "mamamia serve")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def _exec(podman: Podman, name: str, *command: str, user: str | None = None) -> tuple[int, str]:
    args = ["exec", *(["--user", user] if user else []), name, *command]
    done = podman(*args, check=False)
    return done.returncode, done.stdout + done.stderr


def test_health_answers_the_catalog_served_outside(container: Running, outside: str) -> None:
    inside = httpx.get(container.url + "/v1/health", timeout=10)
    assert inside.status_code == 200
    assert inside.json()["status"] == "ok"
    assert inside.content == httpx.get(outside + "/v1/health", timeout=10).content


def _same_answer(inside: httpx.Response, there: httpx.Response, what: str) -> None:
    assert inside.status_code == there.status_code == 200, (what, inside.text[:300])
    assert inside.content == there.content, what
    for header in ("content-type", "x-catalog-version", "x-shape", "x-dtype", "x-origin-xyz"):
        assert inside.headers.get(header) == there.headers.get(header), (what, header)


def test_cohort_query_and_crop_are_the_same_bytes(container: Running, outside: str) -> None:
    gets = [
        ("/v1/cohort", {"where": WHERE, "limit": "2"}),
        ("/v1/cohort", {"where": WHERE, "format": "parquet"}),
        ("/v1/cases/DUKE_001/crop", {"phase": "1", "z": "0:4", "y": "2:30", "x": "3:29"}),
        ("/v1/cases/NACT_01/crop", {"kind": "expert", "format": "raw"}),
    ]
    for path, params in gets:
        there = httpx.get(outside + path, params=params, timeout=30)
        _same_answer(httpx.get(container.url + path, params=params, timeout=30), there, path)
    first = {"where": WHERE, "limit": 2}
    there = httpx.post(outside + "/v1/query", json=first, timeout=30)
    inside = httpx.post(container.url + "/v1/query", json=first, timeout=30)
    _same_answer(inside, there, "/v1/query")
    page = inside.json()
    assert page["truncated"] and page["next_cursor"]
    # The next page through the cursor the container signed, on both servers.
    follow = {"cursor": page["next_cursor"]}
    _same_answer(
        httpx.post(container.url + "/v1/query", json=follow, timeout=30),
        httpx.post(outside + "/v1/query", json=follow, timeout=30),
        "/v1/query next page",
    )


def test_server_runs_as_the_unprivileged_user(podman: Podman, container: Running) -> None:
    code, status = _exec(podman, container.name, "cat", "/proc/1/status")
    assert code == 0, status
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    # PID 1 is the server itself (the entrypoint is exec'd), with every uid unprivileged.
    assert fields["Uid"].split() == [str(UNPRIVILEGED_UID)] * 4
    code, cmdline = _exec(podman, container.name, "cat", "/proc/1/cmdline")
    assert code == 0 and "mamamia\0serve\0/data" in cmdline
    assert _exec(podman, container.name, "id", "-u")[1].strip() == str(UNPRIVILEGED_UID)


def test_catalog_mount_is_read_only_and_still_served(
    podman: Podman, container: Running, catalog_dir: Path
) -> None:
    before = sorted(p.name for p in catalog_dir.iterdir())
    # Even root in the container cannot write: the mount itself is read-only.
    for user in (None, "0"):
        code, out = _exec(podman, container.name, "touch", "/data/probe", user=user)
        assert code != 0 and "Read-only file system" in out, (user, out)
    assert sorted(p.name for p in catalog_dir.iterdir()) == before
    crop = httpx.get(container.url + "/v1/cases/ISPY1_1001/crop", params={"z": "0:2"}, timeout=30)
    assert crop.status_code == 200 and crop.headers["content-type"] == "application/x-npy"
    query = httpx.post(container.url + "/v1/query", json={"sql": "SELECT count(*) FROM cases"})
    assert query.status_code == 200 and query.json()["rows"] == [[6]]


def test_image_healthcheck_succeeds(podman: Podman, image: str, container: Running) -> None:
    (inspected,) = json.loads(podman("image", "inspect", image).stdout)
    check = inspected["Healthcheck"]
    assert check["Test"][:2] == ["CMD", "python"] and "/v1/health" in check["Test"][-1]
    done = podman("healthcheck", "run", container.name, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    # The same command where no server answers fails: the check does probe the server.
    alone = podman(
        "run",
        "--rm",
        "--network=none",
        "--entrypoint",
        check["Test"][1],
        image,
        *check["Test"][2:],
        check=False,
    )
    assert alone.returncode != 0


@pytest.mark.parametrize(("where", "argv"), DOCUMENTED_RUNS, ids=[w for w, _ in DOCUMENTED_RUNS])
def test_documented_run_serves_and_guards(
    podman: Podman, image: str, catalog_dir: Path, tmp_path: Path, where: str, argv: list[str]
) -> None:
    """Each documented `run` serves the catalog, with the tokens it configures, healthy."""
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("# one token per line\nsecret-token-1\n")
    tokens.chmod(0o644)  # read by uid 10001
    command = " ".join(argv)
    token = (
        "change-me"
        if "MAMAMIA_SERVER_TOKENS=change-me" in command
        else "secret-token-1"
        if "tokens.txt" in command
        else None
    )
    with _started(podman, argv, {"demo/catalog": catalog_dir, "tokens.txt": tokens}) as running:
        catalog = running.url + "/v1/catalog"
        if token is None:
            assert httpx.get(catalog, timeout=10).status_code == 200
        else:
            assert httpx.get(catalog, timeout=10).status_code == 401
            wrong = httpx.get(catalog, headers={"Authorization": "Bearer nope"}, timeout=10)
            assert wrong.status_code == 401
            right = httpx.get(catalog, headers={"Authorization": f"Bearer {token}"}, timeout=10)
            assert right.status_code == 200 and right.json()["catalog_version"]
        health = podman("healthcheck", "run", running.name, check=False)
        assert health.returncode == 0, (where, health.stdout + health.stderr)


def test_python_base_is_laid_out_as_the_official_image(podman: Podman, image: str) -> None:
    """What the Dockerfile relies on in python:3.11-slim, whether the official one or ours."""
    probe = (
        "import json, os, shutil, sys; print(json.dumps([list(sys.version_info[:2]),"
        " [shutil.which(p) for p in ('python', 'python3', 'python3.11', 'pip', 'useradd')],"
        " os.environ.get('LANG'), os.environ['PATH'].split(':')[0]]))"
    )
    version, paths, lang, first = json.loads(
        run_python(podman, "docker.io/library/python:3.11-slim", probe)
    )
    assert version == [3, 11]
    assert paths[:4] == [f"/usr/local/bin/{p}" for p in ("python", "python3", "python3.11", "pip")]
    assert paths[4] is not None
    assert (lang, first) == ("C.UTF-8", "/usr/local/bin")


def test_image_reads_through_the_compiled_loop_without_a_compiler(
    podman: Podman, image: str
) -> None:
    # The build stage compiled mamamia._boxdecode; the runtime stage has the module, no gcc.
    probe = (
        "import json, shutil, mamamia._boxread as b;"
        " print(json.dumps([b.compiled(), shutil.which('gcc'), shutil.which('cc')]))"
    )
    assert json.loads(run_python(podman, image, probe)) == [True, None, None]


def test_image_holds_no_dev_dependencies(podman: Podman, image: str) -> None:
    probe = (
        "import importlib.util, json; print(json.dumps({m: importlib.util.find_spec(m) is not None"
        " for m in ['pytest', 'mypy', 'moto', 'playwright', 'hypothesis', 'ruff',"
        " 'mamamia_server', 'mamamia', 'mamamia_schema', 'duckdb', 'uvicorn']}))"
    )
    found = json.loads(run_python(podman, image, probe))
    dev = ("pytest", "mypy", "moto", "playwright", "hypothesis", "ruff")
    assert [name for name in dev if found[name]] == []
    assert all(found[name] for name in found if name not in dev), found
    size_mb = image_size(podman, image) / 1e6
    print(f"\n{image}: {size_mb:.0f} MB")
    # The server's dependencies are about 300 MB; dev tools would add several hundred more.
    assert size_mb < 700, size_mb
