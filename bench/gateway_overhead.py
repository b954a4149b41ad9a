"""Gateway overhead against a fast fake backend on a real socket.

    python -m bench.gateway_overhead [--runs 200]

Prints: time to first token through the gateway minus directly (p50/p95), tokens/s relayed
with 1, 10 and 50 concurrent streams, and the failover time after a refused connection.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("POLICYDESK_SECRET_KEY", "bench-only")
os.environ.setdefault("POLICYDESK_AUDIT_HMAC_KEY", "bench-only")
django.setup()

import httpx  # noqa: E402

from bench.fake_llm import DEFAULT_TEXT, FakeOpenAI  # noqa: E402
from devserver.embedded import free_port  # noqa: E402
from llm.config import BackendConfig  # noqa: E402
from llm.gateway import Gateway, Token  # noqa: E402

MESSAGES = [{"role": "user", "content": "What is annual leave?"}]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def config(name: str, url: str, **extra: object) -> BackendConfig:
    return BackendConfig(name=name, kind="openai", base_url=url, model="fake-model", **extra)  # type: ignore[arg-type]


async def direct_ttft(client: httpx.AsyncClient) -> float:
    body = {"model": "fake-model", "messages": MESSAGES, "stream": True}
    started = time.perf_counter()
    async with client.stream("POST", "/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if line.startswith("data:") and '"content": "' in line and '"content": ""' not in line:
                return (time.perf_counter() - started) * 1000
    raise RuntimeError("no token")


async def gateway_ttft(gateway: Gateway) -> float:
    started = time.perf_counter()
    events = gateway.generate(MESSAGES).events()
    try:
        async for event in events:
            if isinstance(event, Token):
                return (time.perf_counter() - started) * 1000
    finally:
        await events.aclose()
    raise RuntimeError("no token")


async def relay_rate(gateway: Gateway, streams: int) -> float:
    async def one() -> int:
        count = 0
        async for event in gateway.generate(MESSAGES).events():
            count += isinstance(event, Token)
        return count

    started = time.perf_counter()
    counts = await asyncio.gather(*(one() for _ in range(streams)))
    return sum(counts) / (time.perf_counter() - started)


async def main(runs: int) -> dict[str, object]:
    server = FakeOpenAI(text=(DEFAULT_TEXT + " ") * 10)
    url = await server.start()
    gateway = Gateway([config("fake", url, max_concurrency=64)])
    report: dict[str, object] = {}
    async with httpx.AsyncClient(base_url=url) as client:
        for _ in range(20):  # warm both paths' connection pools
            await direct_ttft(client)
            await gateway_ttft(gateway)
        direct, through = [], []
        for _ in range(runs):  # interleaved, so drift hits both equally
            direct.append(await direct_ttft(client))
            through.append(await gateway_ttft(gateway))
    overhead = [g - d for g, d in zip(through, direct, strict=True)]
    report["ttft_direct_ms"] = {"p50": pct(direct, 0.5), "p95": pct(direct, 0.95)}
    report["ttft_gateway_ms"] = {"p50": pct(through, 0.5), "p95": pct(through, 0.95)}
    report["overhead_ms"] = {"p50": pct(overhead, 0.5), "p95": pct(overhead, 0.95)}
    report["tokens_per_s_relayed"] = {str(n): round(await relay_rate(gateway, n)) for n in (1, 10, 50)}
    await gateway.aclose()

    failover = []
    for _ in range(20):
        refused = config("down", f"http://127.0.0.1:{free_port()}/v1", connect_timeout=2.0)
        pair = Gateway([refused, config("up", url)])
        failover.append(await gateway_ttft(pair) - statistics.median(direct))
        await pair.aclose()
    report["failover_after_refused_ms"] = {"p50": pct(failover, 0.5), "max": round(max(failover), 2)}
    await server.stop()
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    print(json.dumps(asyncio.run(main(parser.parse_args().runs)), indent=2))
