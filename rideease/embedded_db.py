"""Start and stop the embedded MongoDB-compatible server (SecantusDB) as a child process.

Used by `make run` when MONGODB_URI is unset, and by the test suite for its throwaway database. SecantusDB is GPL-2.0,
so it always runs as a separate process and is never imported by the application.
"""

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pymongo
from pymongo.errors import PyMongoError

STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 20.0
_PR_SET_PDEATHSIG = 1


class EmbeddedDbError(RuntimeError):
    """The embedded server could not be started."""


@dataclass
class EmbeddedDb:
    process: subprocess.Popen[bytes]
    host: str
    port: int
    storage: str

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/"


def die_with_parent() -> None:
    """Ask Linux to send SIGTERM to this process when its parent dies, so no server outlives its launcher."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _server_executable() -> str:
    beside_python = Path(sys.executable).parent / "secantusd-py"
    found = str(beside_python) if beside_python.exists() else shutil.which("secantusd-py")
    if not found:
        raise EmbeddedDbError("secantusd-py not found: install requirements.txt (SecantusDB) first.")
    return found


def _wait_until_ready(server: EmbeddedDb, log_path: Path | None) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path and log_path.exists() else ""
            raise EmbeddedDbError(f"the database server exited with code {server.process.returncode}.\n{tail}")
        try:
            client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
                server.uri, serverSelectionTimeoutMS=500, connectTimeoutMS=500
            )
            try:
                client.admin.command("ping")
                return
            finally:
                client.close()
        except PyMongoError:
            time.sleep(0.1)
    embedded_db_stop(server)
    raise EmbeddedDbError(f"the database server did not answer on {server.uri} within {STARTUP_TIMEOUT_SECONDS:.0f}s")


def embedded_db_start(
    *, port: int, storage: str | Path, host: str = "127.0.0.1", log_path: Path | None = None
) -> EmbeddedDb:
    """Start SecantusDB on host:port with data in `storage` (":memory:" for a throwaway one) and wait for it."""
    if port_in_use(host, port):
        raise EmbeddedDbError(
            f"{host}:{port} is already in use. Another `make run` may be running; stop it, or set "
            "EMBEDDED_MONGODB_PORT to another port, or MONGODB_URI to use an existing server."
        )
    if storage != ":memory:":
        Path(storage).mkdir(parents=True, exist_ok=True)
    command = [_server_executable(), "--host", host, "--port", str(port), "--storage-path", str(storage)]
    command += ["--log-level", "WARNING"]
    output = log_path.open("ab") if log_path else subprocess.DEVNULL
    try:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own session: a Ctrl-C in the terminal reaches the launcher, which stops the server last, cleanly.
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only calls prctl, safe before exec
        )
    finally:
        if log_path:
            output.close()  # type: ignore[union-attr]
    server = EmbeddedDb(process=process, host=host, port=port, storage=str(storage))
    _wait_until_ready(server, log_path)
    return server


def embedded_db_stop(server: EmbeddedDb) -> int | None:
    """Stop the server with SIGTERM (it flushes its data), then SIGKILL if it hangs; return its exit code."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()
    return server.process.returncode
