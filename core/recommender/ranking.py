"""The k best items of a score vector, reproducibly (pure numpy)."""

import math

import numpy as np

# Up to this many items Python's sort ranks faster than numpy, and it keeps the GIL: numpy's sorts release it, and
# under gunicorn's threads each release is a contended hand-over costing more than the ranking itself.
PYTHON_SORT_MAX_ITEMS = 256


def ranked_items(item_ids: list[str], scores: np.ndarray, k: int) -> list[tuple[str, float]]:
    """The k best (item id, score), best first; ties go to the lower index, so results are reproducible.

    Items scored -inf (excluded, e.g. already booked) are left out.
    """
    n = scores.shape[0]
    k = min(k, n)
    if k <= 0:
        return []
    if n <= PYTHON_SORT_MAX_ITEMS:
        values = scores.tolist()
        best = sorted(range(n), key=values.__getitem__, reverse=True)[:k]  # stable: ties keep index order
        return [(item_ids[i], values[i]) for i in best if math.isfinite(values[i])]
    # Everything scoring at least the k-th best value: a partition alone would pick among ties at random.
    kth = np.partition(scores, n - k)[n - k]
    candidates = np.flatnonzero(scores >= kth)
    order = candidates[np.lexsort((candidates, -scores[candidates]))][:k]
    chosen = scores[order].tolist()
    return [(item_ids[i], score) for i, score in zip(order.tolist(), chosen, strict=True) if math.isfinite(score)]
