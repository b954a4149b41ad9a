"""The one definition of what an embedding vector is here: its width and its normalisation."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# Every model the index may hold (multilingual-e5-small, all-MiniLM-L6-v2) writes 384 numbers.
EMBEDDING_DIMENSIONS = 384


def l2_normalised(rows: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """Each row scaled to length 1 (a zero row stays zero), as float32: cosine becomes a dot."""
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return (rows / np.clip(norms, 1e-12, None)).astype(np.float32)
