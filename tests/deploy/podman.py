"""Podman for the container tests: a private containers.conf, a local Python 3.11 base image, image builds.

No Docker engine runs on the project's machines and no base image can be pulled, so the base the Dockerfiles name
(`python:3.11-slim`) is made from Debian bookworm (whose python3 is 3.11) with debootstrap and imported under that
name, once per machine. Builds run with `--pull=never`; pip inside a build reaches PyPI through the host's CA bundle
and pip configuration, mounted read-only.
"""

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.servers import BASE_DIR

BASE_IMAGE = "docker.io/library/python:3.11-slim"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# What the images run as (docker/Dockerfile.app and docker/Dockerfile.train).
IMAGE_UID = 10001
# Rootful podman on these machines: runc (crun fails here), cgroupfs and file events (no systemd).
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
# Files the host's pip needs to reach its index from inside a build, when they exist.
PIP_MOUNTS = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pip.conf")
BUILD_TIMEOUT = 1200


def require_tool(name: str) -> str:
    """The tool's path; a missing tool fails the test (`make install-dev` installs it)."""
    path = shutil.which(name)
    assert path, f"{name} is not installed: `make install-dev` installs it"
    return path


def source_revision() -> str:
    result = subprocess.run(["git", "-C", str(BASE_DIR), "rev-parse", "HEAD"], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else "unknown"


@dataclass(frozen=True)
class Podman:
    """Runs podman with the tests' own containers.conf, so nothing global has to be configured."""

    conf_dir: Path

    @classmethod
    def create(cls, conf_dir: Path) -> "Podman":
        require_tool("podman")
        require_tool("runc")
        conf_dir.mkdir(parents=True, exist_ok=True)
        (conf_dir / "containers.conf").write_text(CONTAINERS_CONF)
        return cls(conf_dir)

    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_CONF": str(self.conf_dir / "containers.conf")}

    def run(
        self, *args: str, check: bool = True, timeout: float = 120, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["podman", *args], env=self.env(), capture_output=True, text=True, timeout=timeout, **kwargs
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(args[:3])} ... exited {result.returncode}\n"
                f"stdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}"
            )
        return result

    def image_exists(self, name: str) -> bool:
        return self.run("image", "exists", name, check=False).returncode == 0

    def image_inspect(self, name: str) -> dict[str, Any]:
        document: list[dict[str, Any]] = json.loads(self.run("image", "inspect", name).stdout)
        return document[0]

    def image_id(self, name: str) -> str | None:
        if not self.image_exists(name):
            return None
        return str(self.image_inspect(name)["Id"])

    def container_inspect(self, name: str) -> dict[str, Any]:
        document: list[dict[str, Any]] = json.loads(self.run("container", "inspect", name).stdout)
        return document[0]

    def remove_container(self, name: str) -> None:
        self.run("rm", "--force", "--time", "10", name, check=False, timeout=60)


@contextmanager
def machine_lock(name: str) -> Iterator[None]:
    """Serialise image work between test runs on one machine (they share podman's image store)."""
    path = Path(tempfile.gettempdir()) / f"rideease-{name}.lock"
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def base_image_ensure(podman: Podman) -> str:
    """The Python 3.11 base the Dockerfiles name, made from Debian bookworm when the machine has none yet."""
    with machine_lock("base-image"):
        if podman.image_exists(BASE_IMAGE):
            return BASE_IMAGE
        debootstrap = require_tool("debootstrap")
        with tempfile.TemporaryDirectory(prefix="rideease-base-", dir="/var/tmp") as scratch:
            rootfs = Path(scratch) / "rootfs"
            result = subprocess.run(
                [
                    debootstrap,
                    "--variant=minbase",
                    "--include=python3,python3-venv,ca-certificates",
                    "bookworm",
                    str(rootfs),
                    DEBIAN_MIRROR,
                ],
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert result.returncode == 0, f"debootstrap failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            # Like the slim images: no package downloads or indexes left in the base.
            for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for path in (rootfs / leftover).glob("*"):
                    if path.is_file():
                        path.unlink()
            tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
            podman.run(
                "import",
                "--change",
                "ENV LANG=C.UTF-8",
                "--change",
                'CMD ["python3"]',
                "-",
                BASE_IMAGE,
                stdin=tar.stdout,
                timeout=600,
            )
            assert tar.stdout is not None
            tar.stdout.close()
            assert tar.wait() == 0, "tar of the base image's root filesystem failed"
        return BASE_IMAGE


def image_build(podman: Podman, *, dockerfile: Path, tag: str, context: Path = BASE_DIR, revision: str) -> str:
    """Build `dockerfile` as `tag` (layers cached between runs); return the image id. The replaced image is removed."""
    mounts = [arg for path in PIP_MOUNTS if Path(path).is_file() for arg in ("--volume", f"{path}:{path}:ro")]
    started = time.monotonic()
    with machine_lock("image-build"):
        previous = podman.image_id(tag)
        podman.run(
            "build",
            "--pull=never",
            "--format",
            "docker",
            "--network",
            "host",
            *mounts,
            "--build-arg",
            f"VCS_REF={revision}",
            "--file",
            str(dockerfile),
            "--tag",
            tag,
            str(context),
            timeout=BUILD_TIMEOUT,
        )
        image_id = podman.image_id(tag)
        assert image_id, f"{tag} was not built ({time.monotonic() - started:.0f}s)"
        if previous and previous != image_id:
            # Only the image this tag named before: other untagged layers are the build cache.
            podman.run("rmi", previous, check=False)
    return image_id
