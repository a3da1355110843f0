"""Podman, and local stand-ins for the Dockerfile's base images, for tests/test_container.py.

No registry serves ``python:3.11-slim`` or ``ghcr.io/astral-sh/uv`` to the machines the suite
runs on, so the Dockerfile's base images are built here and tagged with exactly the names it
uses (``docker.io/library/python:3.11-slim``, ``ghcr.io/astral-sh/uv:<tag>``); the Dockerfile
itself is built unchanged, as it is against the official images.

- python: a Debian bookworm ``minbase`` root filesystem (debootstrap) with Debian's python3.11
  (3.11.2), its headers and ca-certificates, laid out like the official image: ``python``, ``python3`` and
  ``python3.11`` in /usr/local/bin, pip installed beside them, the same PATH, LANG and CMD, no
  "externally managed" marker. Certificate authorities the host trusts locally
  (/usr/local/share/ca-certificates) are added, as a site behind a TLS-inspecting proxy does
  to its base images; otherwise the build stage could not reach PyPI.
- uv: ``FROM scratch`` with /uv and /uvx, the binaries of the ``uv`` wheel of the same version.

Each stand-in carries a label with a hash of its recipe, so it is built once per machine and
rebuilt only when the recipe changes. An image of that name without the label (the official
one, pulled) is used as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

INSTALL = "apt-get install -y podman runc debootstrap"
LABEL = "org.mamamia.stand-in"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
#: Python's headers too, as the official image has them (the build stage compiles the SDK's C
#: module against them).
DEBIAN_PACKAGES = ("python3.11", "libpython3.11-dev", "ca-certificates")
#: The pip that the official python:3.11 images carry (what its ensurepip bundles).
PIP_VERSION = "24.0"
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
#: crun and podman's default rlimits are refused on some hosts (cgroup and rlimit setup).
CONTAINERS_CONF = '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n'

PYTHON_CONTAINERFILE = """\
FROM {rootfs}
COPY context/ /stand-in/
RUN rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED \\
 && ln -s /usr/bin/python3.11 /usr/local/bin/python3.11 \\
 && ln -s python3.11 /usr/local/bin/python3 \\
 && ln -s python3 /usr/local/bin/python \\
 && /usr/local/bin/python3.11 /stand-in/{pip_wheel}/pip install --no-index --no-cache-dir \\
    --no-compile /stand-in/{pip_wheel} \\
 && find /stand-in/ca -name '*.crt' -exec cp {{}} /usr/local/share/ca-certificates/ ';' \\
 && update-ca-certificates >/dev/null && rm -rf /stand-in
ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    LANG=C.UTF-8 PYTHON_VERSION=3.11.2
LABEL {label}={recipe}
CMD ["python3"]
"""

UV_CONTAINERFILE = """\
FROM scratch
COPY uv uvx /
LABEL {label}={recipe}
ENTRYPOINT ["/uv"]
"""


class ContainerToolMissing(RuntimeError):
    """podman, runc or debootstrap is not installed."""


@dataclass(frozen=True)
class Podman:
    """The podman command with the configuration this kind of host needs."""

    executable: str
    conf: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_CONF": str(self.conf)}

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 900, stdin: int | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.executable, *args],
            stdin=stdin,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"podman {' '.join(args[:3])} ... exited {done.returncode}:\n"
                f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
            )
        return done

    def build(self, context: Path, tag: str, *extra: str) -> None:
        # chroot isolation: the default (OCI runtime) isolation fails on some cgroup setups; host
        # network: the build stage fetches wheels from PyPI; docker format: keeps HEALTHCHECK.
        self(
            "build",
            "--isolation=chroot",
            "--network=host",
            "--format=docker",
            "-t",
            tag,
            *extra,
            str(context),
            timeout=1800,
        )

    def image_id(self, image: str) -> str | None:
        done = self("image", "inspect", "--format", "{{.Id}}", image, check=False)
        return done.stdout.strip() if done.returncode == 0 else None

    def label(self, image: str) -> str | None:
        """The stand-in label of ``image``; ``""`` when it has none, None when it is absent."""
        if self("image", "exists", image, check=False).returncode != 0:
            return None
        out = self("image", "inspect", "--format", "{{json .Labels}}", image).stdout
        labels = json.loads(out) or {}
        return str(labels.get(LABEL, ""))


def find_podman(work: Path) -> Podman:
    """podman configured for this host; ContainerToolMissing names the install command."""
    missing = [t for t in ("podman", "runc", "debootstrap") if _which(t) is None]
    if missing:
        raise ContainerToolMissing(
            f"{', '.join(missing)} not installed: run `{INSTALL}` (as .ci/run does)"
        )
    if os.geteuid() != 0:
        raise ContainerToolMissing(
            "the container test runs podman and debootstrap as root: run the suite as root"
            " (as .ci/run does)"
        )
    work.mkdir(parents=True, exist_ok=True)
    conf = work / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    return Podman(executable=str(_which("podman")), conf=conf)


def _which(tool: str) -> str | None:
    # runc and debootstrap live in /usr/sbin, which a non-login PATH may lack.
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return shutil.which(tool, path=path)


def base_images(dockerfile: Path) -> list[str]:
    """Every image the Dockerfile pulls: ``FROM`` images and ``COPY --from`` images."""
    text = dockerfile.read_text()
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, flags=re.M | re.I))
    refs = re.findall(r"^FROM\s+(\S+)", text, flags=re.M | re.I)
    refs += re.findall(r"--from=(\S+)", text)
    out: list[str] = []
    for ref in refs:
        if ref not in stages and ref != "scratch" and ref not in out:
            out.append(ref)
    return out


def ensure_stand_ins(podman: Podman, dockerfile: Path, work: Path) -> list[str]:
    """Make every base image of ``dockerfile`` available locally; returns the names built now."""
    built: list[str] = []
    for ref in base_images(dockerfile):
        name, _, tag = ref.partition(":")
        if name == "python" and tag == "3.11-slim":
            if _ensure_python(podman, work):
                built.append(ref)
        elif name == "ghcr.io/astral-sh/uv":
            if _ensure_uv(podman, tag, work):
                built.append(ref)
        else:
            raise ValueError(f"{dockerfile}: no local stand-in for base image {ref!r}")
    return built


def _recipe(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


PIP_DOWNLOAD = (
    sys.executable,
    "-m",
    "pip",
    "download",
    "--quiet",
    "--no-deps",
    "--only-binary=:all:",
)


def _download_wheel(requirement: str, dest: Path) -> Path:
    """One wheel from PyPI (for this machine's platform) through pip."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [*PIP_DOWNLOAD, "--dest", str(dest), requirement],
        check=True,
        capture_output=True,
        timeout=600,
    )
    name = re.split(r"[=<>~!]", requirement)[0]
    (wheel,) = sorted(dest.glob(f"{name}-*.whl"))
    return wheel


def _ensure_python(podman: Podman, work: Path) -> bool:
    image = "docker.io/library/python:3.11-slim"
    cas = sorted(LOCAL_CAS.rglob("*.crt")) if LOCAL_CAS.is_dir() else []
    rootfs_recipe = _recipe(DEBIAN_SUITE, *DEBIAN_PACKAGES)
    pip_wheel = f"pip-{PIP_VERSION}-py3-none-any.whl"
    recipe = _recipe(rootfs_recipe, PYTHON_CONTAINERFILE, pip_wheel, *(c.read_bytes() for c in cas))
    if podman.label(image) in (recipe, ""):
        return False  # this stand-in already, or the official image
    rootfs_image = f"localhost/mamamia-stand-in/{DEBIAN_SUITE}-minbase:{rootfs_recipe}"
    if podman("image", "exists", rootfs_image, check=False).returncode != 0:
        _import_rootfs(podman, rootfs_image, work / "rootfs")
    context = work / "python-stand-in"
    shutil.rmtree(context, ignore_errors=True)
    (context / "context" / "ca").mkdir(parents=True)
    _download_wheel(f"pip=={PIP_VERSION}", context / "context")
    for number, ca in enumerate(cas):
        shutil.copyfile(ca, context / "context" / "ca" / f"local-{number}-{ca.name}")
    (context / "Containerfile").write_text(
        PYTHON_CONTAINERFILE.format(
            rootfs=rootfs_image, pip_wheel=pip_wheel, label=LABEL, recipe=recipe
        )
    )
    podman.build(context, image)
    return True


DEBOOTSTRAP = ("debootstrap", "--variant=minbase", f"--include={','.join(DEBIAN_PACKAGES)}")


def _import_rootfs(podman: Podman, tag: str, rootfs: Path) -> None:
    """debootstrap a minbase root filesystem with DEBIAN_PACKAGES and import it as ``tag``."""
    shutil.rmtree(rootfs, ignore_errors=True)
    subprocess.run(
        [*DEBOOTSTRAP, DEBIAN_SUITE, str(rootfs), DEBIAN_MIRROR],
        check=True,
        capture_output=True,
        timeout=1200,
        env={**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"},
    )
    # Like the official slim images: no package downloads or index files left behind.
    for folder in (rootfs / "var/cache/apt/archives", rootfs / "var/lib/apt/lists"):
        for entry in folder.glob("*"):
            if entry.is_file():
                entry.unlink()
    # Streamed: the root filesystem is never held in memory.
    with subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE) as tar:
        assert tar.stdout is not None
        podman("import", "-", tag, stdin=tar.stdout.fileno())
    if tar.returncode != 0:
        raise RuntimeError(f"tar of {rootfs} exited {tar.returncode}")
    shutil.rmtree(rootfs, ignore_errors=True)


def _ensure_uv(podman: Podman, tag: str, work: Path) -> bool:
    image = f"ghcr.io/astral-sh/uv:{tag}"
    # A tag like "0.13" names the newest 0.13.x, as the official image's tag does.
    requirement = f"uv=={tag}" if tag.count(".") >= 2 else f"uv=={tag}.*"
    recipe = _recipe(UV_CONTAINERFILE, requirement)
    if podman.label(image) in (recipe, ""):
        return False
    context = work / "uv-stand-in"
    shutil.rmtree(context, ignore_errors=True)
    wheel = _download_wheel(requirement, work / "uv-wheel")
    context.mkdir(parents=True)
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if re.fullmatch(r"uv-[^/]+\.data/scripts/uvx?", member):
                target = context / Path(member).name
                target.write_bytes(archive.read(member))
                target.chmod(0o755)
    (context / "Containerfile").write_text(UV_CONTAINERFILE.format(label=LABEL, recipe=recipe))
    podman.build(context, image)
    return True


def image_size(podman: Podman, image: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())


def run_python(podman: Podman, image: str, code: str) -> str:
    """Run ``python -c code`` in a fresh container of ``image``, without network; its stdout."""
    return podman(
        "run", "--rm", "--network=none", "--entrypoint", "python", image, "-c", code
    ).stdout
