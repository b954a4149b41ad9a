"""The ONNX Runtime embedder against the sentence-transformers model it was exported from."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from rag.embedding import MiniLMEmbedder, OnnxMiniLMEmbedder

TEXTS = [
    "How many days of annual leave do I get?",
    "Can I expense a taxi from the airport after a late flight?",
    "Nghỉ phép năm được bao nhiêu ngày?",
    "Leave types > Sick leave\nEmployees may take up to ten days of paid sick leave each year.",
    "word " * 400,  # longer than the model's 256-token window: both truncate
    "",
]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b)
    )


@pytest.fixture(scope="module")
def reference() -> MiniLMEmbedder:
    return MiniLMEmbedder(threads=1)


@pytest.fixture(scope="module")
def onnx(tmp_path_factory: pytest.TempPathFactory) -> OnnxMiniLMEmbedder:
    return OnnxMiniLMEmbedder(threads=1, cache_dir=tmp_path_factory.mktemp("models"))


def test_the_onnx_export_embeds_like_the_pytorch_model(
    onnx: OnnxMiniLMEmbedder, reference: MiniLMEmbedder
) -> None:
    exported = onnx.embed_documents(TEXTS)
    expected = reference.embed_documents(TEXTS)

    for text, got, want in zip(TEXTS, exported, expected, strict=True):
        assert len(got) == 384
        assert cosine(got, want) > 0.9999, text[:40]
    assert cosine(onnx.embed_query(TEXTS[0]), expected[0]) > 0.9999
    # Batches are sorted by length internally; results must come back in input order.
    assert cosine(exported[0], expected[1]) < 0.9


def test_it_counts_tokens_like_the_model_tokenizer(
    onnx: OnnxMiniLMEmbedder, reference: MiniLMEmbedder
) -> None:
    for text in TEXTS:
        assert onnx.count_tokens(text) == reference.count_tokens(text)


def test_it_exports_once_and_reuses_the_cached_graph(tmp_path: Path) -> None:
    OnnxMiniLMEmbedder(threads=1, cache_dir=tmp_path)
    (exported,) = tmp_path.glob("*.onnx")
    first_write = exported.stat().st_mtime_ns

    OnnxMiniLMEmbedder(threads=1, cache_dir=tmp_path)

    assert list(tmp_path.glob("*.onnx")) == [exported]
    assert exported.stat().st_mtime_ns == first_write
    assert not list(tmp_path.glob("*.partial"))
