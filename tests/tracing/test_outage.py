"""Fault test: stop the database under traffic, keep serving, restart it, and find every trace exactly once."""

import json
import time
from pathlib import Path

import pymongo
import pytest

from rideease.embedded_db import embedded_db_start, embedded_db_stop, free_port
from tests.servers import gunicorn_app, http_get, prepare_served_database

pytestmark = pytest.mark.slow
DB = "outage_check"


def serve(base: str, count: int, offset: int) -> list[str]:
    ids = []
    for n in range(count):
        status, body = http_get(f"{base}/recommendations?userId=rider-{(offset + n):06d}&limit=5")
        assert status == 200, body
        ids.append(json.loads(body)["requestId"])
    return ids


def stored(uri: str, ids: list[str]) -> tuple[list[int], list[int]]:
    with pymongo.MongoClient(uri, serverSelectionTimeoutMS=3000) as client:
        database = client[DB]
        traces = [database["prediction_traces"].count_documents({"requestId": i}) for i in ids]
        exposures = [database["raw_events"].count_documents({"payload.requestId": i}) for i in ids]
    return traces, exposures


def test_an_outage_under_traffic_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    port, storage = free_port(), tmp_path / "db"
    server = embedded_db_start(port=port, storage=storage)
    restarted = None
    try:
        prepare_served_database(mongodb_uri=server.uri, mongodb_db=DB, var_dir=tmp_path)
        env = {"TRACE_FLUSH_MS": "50", "MONGODB_TIMEOUT_MS": "500"}
        with gunicorn_app(mongodb_uri=server.uri, mongodb_db=DB, var_dir=tmp_path, extra_env=env) as base:
            ids = serve(base, 40, 0)
            embedded_db_stop(server)
            ids += serve(base, 40, 40)  # the database is down: answers keep coming
            spool = tmp_path / "spool"
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not list(spool.glob("*.jsonl")):
                time.sleep(0.1)
            assert list(spool.glob("*.jsonl")), "records should wait in the spool while the database is down"
            restarted = embedded_db_start(port=port, storage=storage)
            ids += serve(base, 40, 80)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and stored(restarted.uri, ids) != ([1] * 120, [1] * 120):
                time.sleep(0.5)
        traces, exposures = stored(restarted.uri, ids)
        assert traces == [1] * 120
        assert exposures == [1] * 120
        assert not list((tmp_path / "spool").glob("*.jsonl"))
    finally:
        embedded_db_stop(server)
        if restarted is not None:
            embedded_db_stop(restarted)
