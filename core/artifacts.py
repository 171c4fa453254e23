"""The on-disk format of a model version: model.json, arrays.npz and metadata.json (pure Python, never pickle).

- model.json: {"format": "rideease-recommender", "formatVersion": 1, "algorithm", "params", "itemIds", "userIds",
  "arrays": {name: {"dtype", "shape"}}, "arraysFile": "arrays.npz"}
- arrays.npz: the model's numeric arrays (numpy's zip of .npy files), read back with allow_pickle=False.
- metadata.json: provenance, training window, counts, metrics and the sha256 of model.json and arrays.npz.
"""

import hashlib
import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.recommender.algorithms import Recommender, recommender_from_arrays

MODEL_FILE = "model.json"
ARRAYS_FILE = "arrays.npz"
METADATA_FILE = "metadata.json"
FORMAT = "rideease-recommender"
FORMAT_VERSION = 1


class ArtifactFormatError(ValueError):
    """An artifact is not a model this code can read."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def json_bytes(document: dict[str, Any]) -> bytes:
    """Stable, readable JSON: sorted keys, two-space indent, UTF-8, trailing newline."""
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


@dataclass(frozen=True)
class ModelFiles:
    """A model serialised to bytes, by file name."""

    files: dict[str, bytes]

    def checksums(self) -> dict[str, str]:
        return {name: sha256_hex(data) for name, data in sorted(self.files.items())}


def model_files_build(model: Recommender) -> ModelFiles:
    """Serialise a fitted model to model.json + arrays.npz."""
    arrays = {name: np.ascontiguousarray(value) for name, value in model.arrays().items()}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, allow_pickle=False, **arrays)
    config = model.config()
    document = {
        "format": FORMAT,
        "formatVersion": FORMAT_VERSION,
        "algorithm": model.algorithm,
        "params": config.get("params", {}),
        "itemIds": model.item_ids,
        "userIds": config.get("user_ids", []),
        "arrays": {name: {"dtype": str(value.dtype), "shape": list(value.shape)} for name, value in arrays.items()},
        "arraysFile": ARRAYS_FILE,
    }
    return ModelFiles(files={MODEL_FILE: json_bytes(document), ARRAYS_FILE: buffer.getvalue()})


def model_files_load(model_json: bytes, arrays_npz: bytes) -> Recommender:
    """Rebuild a model from its two files; refuse anything that is not exactly what the format says."""
    try:
        document = json.loads(model_json)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactFormatError(f"{MODEL_FILE} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ArtifactFormatError(f"{MODEL_FILE} is not a {FORMAT} document")
    if document.get("formatVersion") != FORMAT_VERSION:
        raise ArtifactFormatError(f"unsupported formatVersion {document.get('formatVersion')!r}")
    try:
        with np.load(io.BytesIO(arrays_npz), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError) as exc:
        raise ArtifactFormatError(f"{ARRAYS_FILE} cannot be read: {exc}") from exc
    declared = document.get("arrays", {})
    if set(declared) != set(arrays):
        raise ArtifactFormatError(f"{ARRAYS_FILE} holds {sorted(arrays)}, {MODEL_FILE} declares {sorted(declared)}")
    for name, spec in declared.items():
        if str(arrays[name].dtype) != spec.get("dtype") or list(arrays[name].shape) != spec.get("shape"):
            raise ArtifactFormatError(f"array {name!r} does not match its declared dtype and shape")
    try:
        return recommender_from_arrays(
            str(document.get("algorithm")),
            params=dict(document.get("params", {})),
            item_ids=list(document["itemIds"]),
            user_ids=list(document.get("userIds", [])),
            arrays=arrays,
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise ArtifactFormatError(f"the model cannot be rebuilt: {exc}") from exc
