"""The artifact format: every model survives the round trip through its files, and anything else is refused."""

import hashlib
import io
import json

import numpy as np
import pytest

from core.artifacts import (
    ARRAYS_FILE,
    FORMAT,
    MODEL_FILE,
    ArtifactFormatError,
    json_bytes,
    model_files_build,
    model_files_load,
    sha256_hex,
)
from core.recommender.algorithms import ALGORITHMS, recommender_fit
from core.recommender.interactions import interactions_from_records

RECORDS = [
    (f"rider-{n % 9}", f"item-{(n * 7) % 13}", ("view", "play", "book", "skip")[n % 4], 1_700_000_000 + n)
    for n in range(200)
]
RIDERS = ["rider-0", "rider-4", "rider-8", "a rider never seen"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_recommends_the_same_after_saving_and_loading(algorithm: str) -> None:
    params = (
        {} if algorithm == "popularity" else {"exclude": ["book"], **({"factors": 4} if algorithm == "svd" else {})}
    )
    model = recommender_fit(algorithm, interactions_from_records(RECORDS), params)
    built = model_files_build(model)
    loaded = model_files_load(built.files[MODEL_FILE], built.files[ARRAYS_FILE])
    assert (loaded.algorithm, loaded.item_ids, loaded.config()) == (model.algorithm, model.item_ids, model.config())
    for rider in RIDERS:
        assert loaded.recommend(rider, 10) == model.recommend(rider, 10)


def _resaved(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


@pytest.mark.parametrize("excluding", [True, False])
def test_an_artifact_from_before_exclusion_rules_still_serves_as_it_did(excluding: bool) -> None:
    # Older artifacts kept every rider's booked items as "converted" and a boolean "exclude_converted".
    model = recommender_fit("itemknn", interactions_from_records(RECORDS), {"exclude": ["book"] if excluding else []})
    built = model_files_build(model)
    booked = recommender_fit("itemknn", interactions_from_records(RECORDS), {"exclude": ["book"]}).arrays()
    with np.load(io.BytesIO(built.files[ARRAYS_FILE]), allow_pickle=False) as archive:
        arrays = {name.replace("excluded_", "converted_"): archive[name] for name in archive.files}
    arrays["converted_indptr"], arrays["converted_indices"] = booked["excluded_indptr"], booked["excluded_indices"]
    document = json.loads(built.files[MODEL_FILE])
    document["params"] = {"neighbors": 50, "exclude_converted": excluding}
    document["arrays"] = {name: {"dtype": str(v.dtype), "shape": list(v.shape)} for name, v in arrays.items()}
    loaded = model_files_load(json_bytes(document), _resaved(arrays))
    for rider in RIDERS:
        assert loaded.recommend(rider, 10) == model.recommend(rider, 10)


def test_checksums_are_the_sha256_of_each_file_and_the_same_model_builds_the_same_bytes() -> None:
    model = recommender_fit("itemknn", interactions_from_records(RECORDS))
    built = model_files_build(model)
    assert built.checksums() == {name: hashlib.sha256(data).hexdigest() for name, data in built.files.items()}
    assert model_files_build(model).files[MODEL_FILE] == built.files[MODEL_FILE]
    assert sha256_hex(b"") == hashlib.sha256(b"").hexdigest()


def _files() -> tuple[dict[str, object], bytes]:
    built = model_files_build(recommender_fit("popularity", interactions_from_records(RECORDS)))
    return json.loads(built.files[MODEL_FILE]), built.files[ARRAYS_FILE]


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_documents_that_are_not_this_format_are_refused() -> None:
    document, arrays = _files()
    with pytest.raises(ArtifactFormatError, match="not valid JSON"):
        model_files_load(b"{not json", arrays)
    with pytest.raises(ArtifactFormatError, match=f"not a {FORMAT} document"):
        model_files_load(json_bytes({**document, "format": "something-else"}), arrays)
    with pytest.raises(ArtifactFormatError, match="unsupported formatVersion"):
        model_files_load(json_bytes({**document, "formatVersion": 99}), arrays)
    with pytest.raises(ArtifactFormatError, match="the model cannot be rebuilt"):
        model_files_load(json_bytes({**document, "algorithm": "itemknn"}), arrays)


def test_arrays_that_differ_from_what_model_json_declares_are_refused() -> None:
    document, arrays = _files()
    with pytest.raises(ArtifactFormatError, match="cannot be read"):
        model_files_load(json_bytes(document), b"not a zip file")
    with pytest.raises(ArtifactFormatError, match="declares"):
        model_files_load(json_bytes(document), _npz(popularity=np.zeros(13, np.float32), extra=np.zeros(1)))
    with pytest.raises(ArtifactFormatError, match="declared dtype and shape"):
        model_files_load(json_bytes(document), _npz(popularity=np.zeros(13, np.float64)))


def test_pickled_arrays_are_never_loaded() -> None:
    document, _ = _files()
    pickled = _npz(popularity=np.array([object()], dtype=object))
    with pytest.raises(ArtifactFormatError, match="cannot be read"):
        model_files_load(json_bytes(document), pickled)
