"""manage.py train --engine spark: the database sums the events, Spark fits ALS, and the version is published, gated
and served through the same paths as the single-machine trainer's; every fault ends with a message and no trace."""

import json
import os
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from recommendations.selectors import raw_event_collection
from registry.models import ModelVersion, ServingState
from rideease.embedded_db import free_port
from tests.servers import BASE_DIR

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
DEMO = ["--users", "300", "--items", "60", "--days", "20", "--events", "8000", "--seed", "11"]


@pytest.fixture
def spark_env(spark_session: Any, serving_env: Path) -> Any:
    """The demo world, a serving runtime, a registry and a Spark hand-off folder of the test's own."""
    call_command("seed_demo", *DEMO, stdout=StringIO(), stderr=StringIO())
    with override_settings(SPARK_WORK_URI=str(serving_env / "spark"), SPARK_MASTER="local[2]"):
        yield serving_env


def train(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("train", "--engine", "spark", "--lookback-days", "20", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _left_behind(tmp_path: Path) -> list[Path]:
    return list((tmp_path / "spark").glob("*")) if (tmp_path / "spark").exists() else []


def test_spark_als_is_published_gated_and_served(spark_env: Path, api_client: APIClient) -> None:
    out, err = train("--trials", "2", "--require-better-than-baseline", "--promote", "control", "--json")
    assert "rider-item pairs" in err and "summed by the database" in err
    report = json.loads(out)
    assert report["algorithm"] == "als" and report["version"] == "v1.0.0"
    assert report["metrics"]["gate"]["passes"] is True
    assert report["metrics"]["engine"] == {"engine": "spark", "sparkVersion": "4.3.0", "master": "local[2]"}
    assert report["counts"]["events"] == 8000
    record = ModelVersion.objects.get()
    assert record.provenance_sources["trainingEngine"] == "spark 4.3.0 (master local[2])"
    assert record.metrics["candidate"]["ndcg@10"] > record.metrics["baselineWithoutSeen"]["ndcg@10"]
    assert len(record.metrics["search"]["trials"]) == 2
    assert ServingState.objects.get().control_version == "v1.0.0"
    # Served like any ALS version: a known rider gets a personal list, not the popularity list.
    riders = {document["userId"] for document in raw_event_collection().find({"type": "book"}).limit(50)}
    bodies = [api_client.get("/recommendations", {"userId": rider, "limit": 5}).json() for rider in sorted(riders)]
    served = [body for body in bodies if body["modelVersion"] == "v1.0.0"]
    assert served and all(len(body["recommendations"]) == 5 for body in served)
    popular = api_client.get("/recommendations", {"userId": "brand-new-rider", "limit": 5}).json()["recommendations"]
    assert any(body["recommendations"] != popular for body in served)
    assert _left_behind(spark_env) == []


def test_an_unreachable_master_publishes_nothing(spark_env: Path) -> None:
    master = f"spark://127.0.0.1:{free_port()}"
    with override_settings(SPARK_MASTER=master), pytest.raises(CommandError) as failed:
        train("--trials", "1")
    assert f"training failed (spark_unreachable): The Spark master {master} is not reachable" in str(failed.value)
    assert not ModelVersion.objects.exists() and _left_behind(spark_env) == []


def test_a_malformed_master_is_named(spark_env: Path) -> None:
    with override_settings(SPARK_MASTER="mesos://somewhere:5050"), pytest.raises(CommandError) as failed:
        train("--trials", "1")
    assert "training failed (spark_master_invalid): SPARK_MASTER 'mesos://somewhere:5050' is not" in str(failed.value)


def _java_child(pid: int) -> int | None:
    """The JVM that pyspark started under process `pid`, once it runs."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if b"java" in command and (parent == pid or _java_parent(parent, pid)):
            return int(entry.name)
    return None


def _java_parent(child: int, ancestor: int) -> bool:
    try:
        parent = int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return False
    return parent == ancestor


def test_a_killed_spark_job_publishes_nothing_and_leaves_nothing(spark_env: Path) -> None:
    env = {
        **os.environ,
        "MONGODB_DB": connection.settings_dict["NAME"],
        "MODEL_REGISTRY_URI": str(spark_env / "registry-killed"),
        "SPARK_WORK_URI": str(spark_env / "spark"),
        "SPARK_MASTER": "local[2]",
    }
    command = [sys.executable, "manage.py", "train", "--engine", "spark", "--lookback-days", "20", "--trials", "5"]
    process = subprocess.Popen(
        command, cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 180
    java = None
    # Kill Spark's JVM once the run's first export is handed over, in the middle of its fits.
    while time.monotonic() < deadline and process.poll() is None:
        java = java or _java_child(process.pid)
        if java and list((spark_env / "spark").glob("run-*/fit-*")):
            os.kill(java, signal.SIGKILL)
            break
        time.sleep(0.2)
    assert java is not None, "the trainer never started Spark"
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1, stderr[-3000:]
    assert "training failed (spark_failed): " in stderr and "Traceback" not in stderr
    assert not ModelVersion.objects.exists() and _left_behind(spark_env) == []
    assert not (spark_env / "registry-killed").exists()


def test_a_missing_java_runtime_is_named(spark_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(spark_env / "no-java"))
    with pytest.raises(CommandError, match=r"spark_no_java.*openjdk-17-jre-headless"):
        train("--trials", "1")
    assert not ModelVersion.objects.exists()


def test_a_failed_spark_job_leaves_nothing_behind(spark_env: Path) -> None:
    with pytest.raises(CommandError) as failed:
        train("--trials", "1", "--param", "factors=0")
    assert "training failed (spark_failed): The Spark job failed on local[2]" in str(failed.value)
    assert not ModelVersion.objects.exists() and _left_behind(spark_env) == []


def test_skips_only_leave_nothing_to_train_on(spark_env: Path) -> None:
    raw_event_collection().update_many({}, {"$set": {"type": "skip"}})
    with pytest.raises(CommandError, match=r"training failed \(no_interactions\)"):
        train("--trials", "1")


def test_the_spark_engine_fits_als_only(spark_env: Path) -> None:
    with pytest.raises(CommandError, match="the Spark engine fits ALS"):
        train("--algorithm", "ease")


@pytest.fixture(scope="module")
def connect_master(spark_session: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A Spark Connect server on loopback (pyspark's own launcher), as a cluster's would be: its own driver JVM."""
    import pyspark

    home = Path(pyspark.__file__).parent
    port = free_port()
    command = ["bash", str(home / "bin" / "spark-class"), "org.apache.spark.deploy.SparkSubmit"]
    command += ["--class", "org.apache.spark.sql.connect.service.SparkConnectServer", "--master", "local[2]"]
    command += ["--conf", f"spark.connect.grpc.binding.port={port}", "--conf", "spark.ui.enabled=false"]
    log = (tmp_path_factory.mktemp("connect") / "server.log").open("wb")
    server = subprocess.Popen(
        [*command, "spark-internal"], env={**os.environ, "SPARK_HOME": str(home)}, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 180
        while b"Spark Connect server started" not in Path(log.name).read_bytes():
            assert server.poll() is None and time.monotonic() < deadline, Path(log.name).read_text()[-2000:]
            time.sleep(0.5)
        yield f"sc://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()


def test_a_spark_connect_master_trains_and_publishes(spark_env: Path, connect_master: str) -> None:
    # Its own process: a Spark Connect client cannot share a process with this suite's classic session.
    env = {
        **os.environ,
        "MONGODB_DB": connection.settings_dict["NAME"],
        "MODEL_REGISTRY_URI": str(spark_env / "registry-connect"),
        "SPARK_WORK_URI": str(spark_env / "spark"),
        "SPARK_MASTER": connect_master,
    }
    command = [sys.executable, "manage.py", "train", "--engine", "spark", "--lookback-days", "20", "--trials", "1"]
    done = subprocess.run(command, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    record = ModelVersion.objects.get()
    assert record.provenance_sources["trainingEngine"] == f"spark 4.3.0 (master {connect_master})"
    assert record.metrics["engine"]["master"] == connect_master
    assert _left_behind(spark_env) == []


def _tiny_pairs() -> Any:
    import numpy as np

    from core.recommender.interactions import interactions_from_records
    from core.recommender.pairs import pairs_from_interactions

    records = [
        (f"u{user}", f"i{(user * 7 + step) % 9}", "play", 1_700_000_000.0 + step)
        for user in range(6)
        for step in range(5)
    ]
    pairs = pairs_from_interactions(interactions_from_records(records), (), 0.2)
    return pairs, np.ones(len(pairs), dtype=np.float32)


def _objects(client: Any, prefix: str) -> list[str]:
    """The objects under `prefix`, without the empty markers that stand for folders."""
    listed = client.list_objects_v2(Bucket="rideease-artifacts", Prefix=prefix).get("Contents", [])
    return [item["Key"] for item in listed if not item["Key"].endswith("/")]


def test_the_hand_off_on_object_storage_is_renamed_file_by_file_and_removed(
    spark_session: Any, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 has no directory rename: each file is written under a temporary name and copied to its own; the run's
    folder goes at the end. (Spark itself reads s3a:// through the cluster's hadoop-aws connector, not here.)"""
    from recommendations.spark_engine import SparkEngine
    from tests.s3_server import FAKE_AWS_ENV, S3_BUCKET, s3_client

    for name, value in {**FAKE_AWS_ENV, "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(name, value)
    client = s3_client(s3_endpoint)
    pairs, values = _tiny_pairs()
    with SparkEngine(master="local[2]", work_uri=f"s3://{S3_BUCKET}/spark-hand-off") as engine:
        assert engine._spark_root.startswith(f"s3a://{S3_BUCKET}/spark-hand-off/run-")
        name = engine.export(pairs, values)
        files = [key.split(f"{name}/", 1)[-1] for key in _objects(client, "spark-hand-off/")]
        assert sorted(files) == ["interactions.parquet", "items.parquet", "users.parquet"]
    assert _objects(client, "spark-hand-off/") == []


def test_an_unwritable_hand_off_is_named(spark_session: Any, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.errors import ApplicationError
    from recommendations.spark_engine import SparkEngine
    from tests.s3_server import FAKE_AWS_ENV

    for name, value in {**FAKE_AWS_ENV, "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ApplicationError) as raised:
        with SparkEngine(master="local[2]", work_uri="s3://no-such-bucket/spark"):
            pass
    assert raised.value.code == "spark_io_failed"
    assert "SPARK_WORK_URI s3://no-such-bucket/spark" in raised.value.message


def test_a_read_the_database_refuses_is_named_apart_from_an_outage(
    spark_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pymongo.errors import OperationFailure

    def refused(**_: Any) -> Any:
        # What a server says when the pipeline's group outgrows its memory without allowDiskUse.
        raise OperationFailure("boom", code=292, details={"errmsg": "Exceeded memory limit for $group"})

    monkeypatch.setattr("recommendations.training.training_pairs_iter", refused)
    with pytest.raises(CommandError, match=r"database_rejected.*code 292.*Exceeded memory limit for \$group"):
        train("--trials", "1")
    assert not ModelVersion.objects.exists()


def test_a_trial_whose_weights_leave_nothing_learns_nothing_and_the_search_goes_on(
    spark_session: Any, tmp_path: Path
) -> None:
    import numpy as np

    from recommendations.spark_engine import SparkEngine

    pairs, values = _tiny_pairs()
    params = {"factors": 4, "iterations": 2, "regularization": 0.1, "alpha": 1.0, "seed": 0}
    with SparkEngine(master="local[2]", work_uri=str(tmp_path / "spark")) as engine:
        nothing = engine.fit(pairs, np.zeros_like(values), params)
        fitted = engine.fit(pairs, values, params)
    assert nothing.users.shape == fitted.users.shape == (6, 4) and not nothing.users.any()
    assert fitted.users.any() and fitted.items.any()
