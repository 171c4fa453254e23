"""Spark MLlib ALS as the trainer's engine: the pairs go to Spark as Parquet, the factors come back as Parquet.

Only the trainer uses this module, and pyspark is imported only when a run starts: the web service never loads Spark
(its image does not even install it). Each run writes under its own folder of SPARK_WORK_URI and removes it at the
end, whatever happened. Each exported file is written under a temporary name and renamed (a single-object copy on
S3 or GCS, which have no directory rename), so Spark never reads half of one.
"""

import logging
import os
import re
import shutil
import socket
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.fs as pafs  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from core.errors import ApplicationError
from core.recommender.pair_training import Factors
from core.recommender.pairs import Pairs

logger = logging.getLogger(__name__)
ROW_GROUP = 1_000_000
CONNECT_TIMEOUT_SECONDS = 5.0
_LOCAL_MASTER = re.compile(r"^local(\[(\d+|\*)(,\d+)?\])?$")
_MASTER_HOSTS = re.compile(r"^(spark|sc|k8s)://")


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise ApplicationError(
            "spark_no_java",
            "The Spark engine needs a Java 17 runtime: install openjdk-17-jre-headless (apt) or set JAVA_HOME; "
            "nothing was published.",
        )
    return java


def _master_address(master: str) -> tuple[str, int] | None:
    """The host and port to reach for a cluster master; None for local[N] and yarn. Raises on a malformed one."""
    if _LOCAL_MASTER.match(master) or master == "yarn":
        return None
    if not _MASTER_HOSTS.match(master):
        raise ApplicationError(
            "spark_master_invalid",
            f"SPARK_MASTER {master!r} is not local[N], yarn, spark://host:port, k8s://https://host:port or "
            "sc://host:port.",
        )
    target = master.removeprefix("k8s://")
    parts = urlsplit(target.split(",")[0])
    default_port = {"spark": 7077, "sc": 15002, "https": 443, "http": 80}.get(parts.scheme, 7077)
    if not parts.hostname:
        raise ApplicationError("spark_master_invalid", f"SPARK_MASTER {master!r} names no host.")
    return parts.hostname, parts.port or default_port


def _check_reachable(master: str) -> None:
    address = _master_address(master)
    if address is None:
        return
    try:
        with socket.create_connection(address, timeout=CONNECT_TIMEOUT_SECONDS):
            pass
    except OSError as exc:
        raise ApplicationError(
            "spark_unreachable",
            f"The Spark master {master} is not reachable ({exc.strerror or exc}): start it, or set SPARK_MASTER "
            "(local[2] runs Spark in this process); nothing was published.",
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]


def _spark_uri(work_uri: str) -> str:
    """The folder as Spark names it: s3a:// for S3 (Hadoop's connector), an absolute file:// path for a local one."""
    if "://" not in work_uri:
        return f"file://{Path(work_uri).resolve()}"
    scheme, rest = work_uri.split("://", 1)
    return f"s3a://{rest}" if scheme in ("s3", "s3a") else work_uri


def _arrow_uri(work_uri: str) -> str:
    scheme, rest = work_uri.split("://", 1)
    return f"s3://{rest}" if scheme == "s3a" else work_uri


@contextmanager
def _storage(work_uri: str, doing: str) -> Iterator[None]:
    """Storage errors (credentials, a missing bucket, a full disk) as one clear message naming SPARK_WORK_URI."""
    try:
        yield
    except (OSError, pa.ArrowException) as exc:
        raise ApplicationError(
            "spark_io_failed",
            f"Could not {doing} under SPARK_WORK_URI {work_uri}: {_first_line(exc)}; nothing was published.",
        ) from exc


class SparkEngine:
    """One training run's Spark session and hand-off folder; `fit` is a core.recommender.pair_training FactorFitter."""

    def __init__(self, *, master: str, work_uri: str, shuffle_partitions: int = 4) -> None:
        self.master = master
        self._shuffle_partitions = shuffle_partitions
        run = f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        self._work_uri = work_uri
        self._spark_root = f"{_spark_uri(work_uri).rstrip('/')}/{run}"
        with _storage(work_uri, "open the hand-off folder"):
            if "://" in work_uri:
                self._fs, root = pafs.FileSystem.from_uri(_arrow_uri(work_uri))
            else:
                self._fs, root = pafs.LocalFileSystem(), str(Path(work_uri).resolve())
        self._root = f"{root.rstrip('/')}/{run}"
        self._fits = 0
        self._session: Any = None
        self.version = ""

    def __enter__(self) -> "SparkEngine":
        _java()
        _check_reachable(self.master)
        try:
            with warnings.catch_warnings():
                # pyspark warns about pandas 3 on import; the engine hands data over as Parquet, never through pandas.
                warnings.simplefilter("ignore", FutureWarning)
                from pyspark.sql import SparkSession
        except ImportError as exc:
            raise ApplicationError(
                "spark_not_installed",
                "The Spark engine needs pyspark: pip install -r requirements-spark.txt (the trainer image has it).",
            ) from exc
        builder = SparkSession.builder.appName("rideease-train")
        if self.master.startswith("sc://"):
            # A Spark Connect server runs its own driver (its UI is its own setting); the session is a client of it.
            builder = builder.remote(self.master)
        else:
            builder = builder.master(self.master).config("spark.ui.enabled", "false")
        try:
            self._session = builder.config("spark.sql.shuffle.partitions", str(self._shuffle_partitions)).getOrCreate()
            self.version = str(self._session.version)
        except Exception as exc:  # the JVM and py4j raise many kinds; all mean the same to the operator
            raise ApplicationError(
                "spark_failed", f"Spark did not start on {self.master}: {_first_line(exc)}; nothing was published."
            ) from exc
        with _storage(self._work_uri, "create the run's folder"):
            self._fs.create_dir(self._root, recursive=True)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        # Never hides the run's own outcome: a folder that cannot be removed is logged, not raised.
        try:
            self._fs.delete_dir(self._root)
        except FileNotFoundError:
            pass
        except (OSError, pa.ArrowException) as error:
            logger.warning("could not remove the Spark run folder %s: %s", self._root, _first_line(error))

    @property
    def about(self) -> dict[str, str]:
        return {"engine": "spark", "sparkVersion": self.version, "master": self.master}

    def export(self, pairs: Pairs, values: np.ndarray) -> str:
        """Write the pairs with a positive value, and the id maps, as Parquet; returns the export's folder name."""
        self._fits += 1
        name = f"fit-{self._fits}"
        folder = f"{self._root}/{name}"
        kept = values > 0
        users, items, weights = pairs.users[kept], pairs.items[kept], values[kept]
        schema = pa.schema([("user", pa.int32()), ("item", pa.int32()), ("weight", pa.float32())])
        with _storage(self._work_uri, "write the interactions"):
            self._fs.create_dir(folder, recursive=True)
            with self._renamed(f"{folder}/interactions.parquet") as partial:
                with pq.ParquetWriter(partial, schema, filesystem=self._fs) as writer:
                    for first in range(0, int(users.shape[0]), ROW_GROUP):
                        rows = slice(first, first + ROW_GROUP)
                        writer.write_table(pa.table([users[rows], items[rows], weights[rows]], schema=schema))
            for kind, ids in (("users", pairs.user_ids), ("items", pairs.item_ids)):
                table = pa.table({"index": np.arange(len(ids), dtype=np.int32), "id": pa.array(ids, pa.string())})
                with self._renamed(f"{folder}/{kind}.parquet") as partial:
                    pq.write_table(table, partial, filesystem=self._fs)
        return name

    @contextmanager
    def _renamed(self, path: str) -> Iterator[str]:
        """Yield a temporary name to write `path` under; rename it to `path` once the writing is done."""
        yield f"{path}.partial"
        self._fs.move(f"{path}.partial", path)

    def _factors(self, path: str, count: int, rank: int) -> np.ndarray:
        table = pq.read_table(path, filesystem=self._fs)
        rows = np.zeros((count, rank), dtype=np.float32)
        if table.num_rows:
            ids = table["id"].to_numpy()
            features = table["features"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
            rows[ids] = features.reshape(-1, rank)
        return rows

    def _als(self, folder: str, rank: int, params: dict[str, Any]) -> None:
        with warnings.catch_warnings():
            # pyspark checks the pandas version as its modules load; the engine never goes through pandas.
            warnings.simplefilter("ignore", FutureWarning)
            from pyspark.ml.recommendation import ALS

            frame = self._session.read.parquet(f"{folder}/interactions.parquet")
            model = ALS(
                rank=rank,
                maxIter=int(params["iterations"]),
                regParam=float(params["regularization"]),
                alpha=float(params["alpha"]),
                implicitPrefs=True,
                userCol="user",
                itemCol="item",
                ratingCol="weight",
                seed=int(params["seed"]),
            ).fit(frame)
            for kind, factors in (("users", model.userFactors), ("items", model.itemFactors)):
                factors.write.parquet(f"{folder}/factors-{kind}")

    def fit(self, pairs: Pairs, values: np.ndarray, params: dict[str, Any]) -> Factors:
        """Spark MLlib ALS with implicit preferences on the pairs' values; riders or items without any get zeros."""
        rank = int(params["factors"])
        if not bool((values > 0).any()):
            # A search trial whose weights leave nothing (views weighted 0 on views-only riders): it learns nothing
            # and scores nothing, as an empty matrix does on one machine, and the search goes on.
            zeros = np.zeros((len(pairs.user_ids), rank), dtype=np.float32)
            return Factors(users=zeros, items=np.zeros((len(pairs.item_ids), rank), dtype=np.float32), about=self.about)
        name = self.export(pairs, values)
        try:
            self._als(f"{self._spark_root}/{name}", rank, params)
        except Exception as exc:  # a failed stage, a lost executor or a killed JVM: the run stops, nothing published
            raise ApplicationError(
                "spark_failed", f"The Spark job failed on {self.master}: {_first_line(exc)}; nothing was published."
            ) from exc
        with _storage(self._work_uri, "read the factors Spark wrote"):
            users = self._factors(f"{self._root}/{name}/factors-users", len(pairs.user_ids), rank)
            items = self._factors(f"{self._root}/{name}/factors-items", len(pairs.item_ids), rank)
            self._fs.delete_dir(f"{self._root}/{name}")
        return Factors(users=users, items=items, about=self.about)
