"""MovieLens "latest small" (100,004 ratings by 671 users of 9,066 movies), as Debian's r-cran-dslabs ships it.

The package is fetched with `apt-get download` into var/datasets/ (a package registry is the only way in here) and
unpacked with `dpkg-deb -x`. Its data sit in R's lazy-load database, read here without R and without pickle: the
.rdx file is a gzip-compressed R serialization of a list whose `variables` map each data set to (offset, length) in
the .rdb file; there, each object is a 4-byte big-endian length followed by its zlib-compressed R serialization,
which the pure-Python `rdata` package parses and converts to a data frame. The ratings are then kept as a plain CSV
beside the package, read on every later load.

`python tests/benchmarks/movielens.py` makes the data set available (what `make bench-data` runs); it does nothing
when the CSV is already there.
"""

import subprocess
import sys
import zlib
from pathlib import Path

import pandas as pd  # type: ignore[import-untyped]
import rdata

BASE_DIR = Path(__file__).resolve().parents[2]
CACHE = BASE_DIR / "var" / "datasets"
PACKAGE = "r-cran-dslabs"
DATASET = "movielens"
COLUMNS = ["userId", "movieId", "rating", "timestamp"]
# R's lazy-load database of the package's data sets (Rdata.rdx and Rdata.rdb), inside the unpacked package.
LAZY_LOAD_DB = Path("usr/lib/R/site-library/dslabs/data/Rdata")


def movielens_ratings(cache: Path = CACHE) -> pd.DataFrame:
    """The ratings: userId, movieId (int), rating (0.5 to 5 in halves), timestamp (Unix seconds)."""
    csv = cache / f"{DATASET}-{PACKAGE}.csv"
    if not csv.exists():
        frame = lazy_load_object(package_dir(cache) / LAZY_LOAD_DB, DATASET)
        ratings = pd.DataFrame({column: frame[column].to_numpy() for column in COLUMNS})
        partial = csv.with_suffix(".partial")
        ratings.to_csv(partial, index=False)
        partial.replace(csv)
    types = {"userId": "int64", "movieId": "int64", "rating": "float64", "timestamp": "int64"}
    return pd.read_csv(csv, dtype=types)


def package_version(cache: Path = CACHE) -> str:
    """The version of the downloaded package (its file name says it), or "" before the download."""
    found = sorted(cache.glob(f"{PACKAGE}_*.deb"))
    return found[-1].name.split("_")[1] if found else ""


def package_dir(cache: Path = CACHE) -> Path:
    """The unpacked package: downloaded (after `apt-get update` if the lists are missing) and unpacked once."""
    target = cache / PACKAGE
    if (target / LAZY_LOAD_DB).with_suffix(".rdb").exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    if not package_version(cache):
        download = ["apt-get", "download", PACKAGE]
        if subprocess.run(download, cwd=cache, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            subprocess.run(download, cwd=cache, check=True, capture_output=True)
    deb = cache / f"{PACKAGE}_{package_version(cache)}_all.deb"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
    return target


def lazy_load_object(database: Path, name: str) -> pd.DataFrame:
    """Read the object `name` of an R lazy-load database (`database` without its .rdx/.rdb suffix)."""
    index = rdata.read_rds(database.with_suffix(".rdx"))
    if not bool(index["compressed"][0]):  # 2 and 3 (bzip2, xz) are also true: the zlib header check below fails
        raise ValueError(f"{database}.rdb is not compressed; only zlib-compressed databases are read")
    offset, length = (int(value) for value in index["variables"][name])
    with database.with_suffix(".rdb").open("rb") as handle:
        handle.seek(offset)
        entry = handle.read(length)
    size, body = int.from_bytes(entry[:4], "big"), zlib.decompress(entry[4:])
    if size != len(body):
        raise ValueError(f"{name}: {len(body)} bytes decompressed, the entry says {size}")
    result = rdata.conversion.convert(rdata.parser.parse_data(body, extension=".rds"))
    if not isinstance(result, pd.DataFrame):
        raise ValueError(f"{name} is a {type(result).__name__}, not a data frame")
    return result


if __name__ == "__main__":
    loaded = movielens_ratings()
    print(  # noqa: T201
        f"{DATASET} from {PACKAGE} {package_version()}: {len(loaded):,} ratings, {loaded.userId.nunique():,} users, "
        f"{loaded.movieId.nunique():,} movies",
        file=sys.stderr,
    )
