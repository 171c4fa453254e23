"""Fresh request ids: 128 bits, unique and unguessable, without a system call per request.

An id is BLAKE2b of a counter under a random key of this process. Without the key the ids are as unpredictable as
random bits, so nobody can claim a future request's id through X-Request-ID; the counter makes them unique within
the process, the key across processes. Why not os.urandom per request: it releases the GIL, and under gunicorn's
threads each release is a contended hand-over that costs more than the whole id.
"""

import hashlib
import itertools
import os

_key = os.urandom(32)
_counter = itertools.count()


def _new_key() -> None:
    """A forked worker must not share its parent's key: it would repeat the parent's ids."""
    global _key, _counter
    _key, _counter = os.urandom(32), itertools.count()


os.register_at_fork(after_in_child=_new_key)


def request_id_new() -> str:
    """32 lowercase hex digits, like a uuid4's hex."""
    return hashlib.blake2b(next(_counter).to_bytes(8, "big"), key=_key, digest_size=16).hexdigest()
