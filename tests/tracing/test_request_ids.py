"""Fresh request ids: 32 hex digits, never repeated within a process, nor between a worker and its forked parent."""

import os
import re

from tracing.request_ids import request_id_new


def test_ids_are_32_hex_digits_and_never_repeat() -> None:
    ids = [request_id_new() for _ in range(100_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_worker_makes_other_ids_than_its_parent() -> None:
    request_id_new()  # the parent has used its key before forking, as gunicorn's master could have
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave without running any test machinery
        os.write(write, " ".join(request_id_new() for _ in range(1000)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        child = set(pipe.read().decode().split())
    os.waitpid(pid, 0)
    parent = {request_id_new() for _ in range(1000)}
    assert len(child) == 1000
    assert not child & parent
