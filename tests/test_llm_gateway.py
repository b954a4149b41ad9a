"""The LLM gateway over real sockets: the real llama.cpp server, an Ollama protocol adapter
relaying it, and fault servers that fail the ways runtimes fail."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from bench.fake_llm import DEFAULT_TEXT, FakeOpenAI, split_tokens
from devserver.embedded import free_port
from llm.config import BackendConfig
from llm.gateway import Gateway, GatewayBusy, GatewayUnavailable, Generation, Handover, Token
from tests.llm_servers import LocalLLMProcess, OllamaProtocolAdapter

QUESTION = [
    {"role": "system", "content": "You answer in one short sentence."},
    {"role": "user", "content": "What is annual leave?"},
]


def backend(name: str, url: str, **overrides: Any) -> BackendConfig:
    values: dict[str, Any] = {
        "name": name,
        "kind": "openai",
        "base_url": url,
        "model": "fake-model",
        "connect_timeout": 0.5,
        "first_token_timeout": 1.0,
        "idle_timeout": 0.5,
        "total_timeout": 10.0,
        "max_tokens": 48,
        "temperature": 0.0,
    }
    values.update(overrides)
    return BackendConfig(**values)


@contextlib.asynccontextmanager
async def fake(**kwargs: Any) -> AsyncIterator[tuple[FakeOpenAI, str]]:
    server = FakeOpenAI(**kwargs)
    url = await server.start()
    try:
        yield server, url
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def gateway_of(*backends: BackendConfig, **kwargs: Any) -> AsyncIterator[Gateway]:
    gateway = Gateway(backends, **kwargs)
    try:
        yield gateway
    finally:
        await gateway.aclose()


async def collect(generation: Generation) -> tuple[list[str], list[Handover]]:
    tokens, handovers = [], []
    async for event in generation.events():
        if isinstance(event, Token):
            tokens.append(event.text)
        else:
            handovers.append(event)
    return tokens, handovers


def refused_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"


# --- pacing ------------------------------------------------------------------------


async def test_pacing_the_reads_keeps_every_token_and_the_count() -> None:
    expected = split_tokens(DEFAULT_TEXT)
    async with fake(tokens_per_second=100) as (_, url):
        async with gateway_of(backend("paced", url, stream_interval=0.1)) as gateway:
            paced = gateway.generate(QUESTION)
            paced_tokens, _ = await collect(paced)
        async with gateway_of(backend("unpaced", url, stream_interval=0.0)) as gateway:
            unpaced = gateway.generate(QUESTION)
            unpaced_tokens, _ = await collect(unpaced)

    assert "".join(paced_tokens) == "".join(unpaced_tokens) == DEFAULT_TEXT
    assert len(unpaced_tokens) == len(expected)
    assert paced_tokens[0] == expected[0], "the first token is relayed alone, at once"
    assert paced.result.attempts[0].tokens == unpaced.result.attempts[0].tokens == len(expected)
    assert paced.result.completion_tokens == len(expected)


async def bursts(generation: Generation) -> tuple[str, int]:
    """The text, and how many separate moments it arrived in (one read of the socket each)."""
    text, moments, last = "", 0, -1.0
    async for event in generation.events():
        if isinstance(event, Token):
            now = time.monotonic()
            moments += now - last > 0.005
            text, last = text + event.text, now
    return text, moments


async def test_the_stream_interval_stretches_with_the_streams_a_process_relays() -> None:
    async with fake(tokens_per_second=100) as (_, url):
        config = backend("paced", url, stream_interval=0.0, idle_timeout=2.0)
        async with gateway_of(config, stream_reads_per_second=0) as gateway:
            unstretched = await asyncio.gather(*(bursts(gateway.generate(QUESTION)) for _ in range(2)))
        async with gateway_of(config, stream_reads_per_second=10) as gateway:
            stretched = await asyncio.gather(*(bursts(gateway.generate(QUESTION)) for _ in range(2)))

    assert all(text == DEFAULT_TEXT for text, _ in unstretched + stretched)
    # 26 tokens in 0.26 s: read as they come, or every 2 streams / 10 reads a second = 0.2 s.
    assert min(moments for _, moments in unstretched) >= 20
    assert max(moments for _, moments in stretched) <= 4


async def test_a_stretched_interval_stays_under_half_the_idle_timeout() -> None:
    config = backend("a", refused_url(), stream_interval=0.05, idle_timeout=0.6)
    async with gateway_of(config, stream_reads_per_second=10) as gateway:
        runtime = gateway.runtimes[0]
        assert gateway.stream_interval(config) == 0.05
        runtime.in_flight = 2
        assert gateway.stream_interval(config) == pytest.approx(0.2)
        runtime.in_flight = 50
        assert gateway.stream_interval(config) == pytest.approx(0.3)
        runtime.in_flight = 0


# --- real runtimes ------------------------------------------------------------------


async def test_it_streams_incremental_deltas_from_the_real_llama_cpp_server(
    local_llm: LocalLLMProcess,
) -> None:
    config = backend("local", local_llm.url, kind="local", model="smollm2", first_token_timeout=30)
    async with gateway_of(config) as gateway:
        generation = gateway.generate(QUESTION, max_tokens=24)
        tokens, handovers = await collect(generation)
    result = generation.result
    assert len(tokens) >= 3, "tokens arrive as many deltas, not one block"
    assert "".join(tokens) == result.text and result.text.strip()
    assert result.finish_reason in ("stop", "length")
    assert result.prompt_tokens and result.prompt_tokens > 10
    assert result.backend == "local" and not handovers
    assert [a.outcome for a in result.attempts] == ["ok"]
    # Tokens that arrive together may share a delta; the attempt counts stream events.
    assert result.attempts[0].ttft_ms is not None and result.attempts[0].tokens >= len(tokens)


async def test_it_streams_through_the_ollama_wire_protocol(local_llm: LocalLLMProcess) -> None:
    adapter = OllamaProtocolAdapter(local_llm.url)
    url = await adapter.start()
    try:
        config = backend("ollama", url, kind="ollama", model="smollm2:135m", first_token_timeout=30)
        async with gateway_of(config) as gateway:
            generation = gateway.generate(QUESTION, max_tokens=24)
            tokens, _ = await collect(generation)
            models = await _models(gateway)
    finally:
        await adapter.stop()
    result = generation.result
    assert len(tokens) >= 3 and result.text.strip()
    assert result.finish_reason in ("stop", "length")
    assert result.prompt_tokens and result.prompt_tokens > 10
    assert models == ["smollm2:135m"]


async def _models(gateway: Gateway) -> list[str]:
    await gateway.probe_all()
    return gateway.runtimes[0].models


async def test_an_unknown_ollama_model_fails_over(local_llm: LocalLLMProcess) -> None:
    adapter = OllamaProtocolAdapter(local_llm.url)
    url = await adapter.start()
    try:
        async with (
            fake() as (_, good),
            gateway_of(
                backend("ollama", url, kind="ollama", model="llama3.2"), backend("next", good)
            ) as gateway,
        ):
            generation = gateway.generate(QUESTION)
            await collect(generation)
    finally:
        await adapter.stop()
    assert generation.result.attempts[0].reason == "model_not_found"
    assert generation.result.text == DEFAULT_TEXT


# --- failures before the first token: silent fallback -----------------------------------

BEFORE_FIRST_TOKEN = [
    ("blackhole", "first_token_timeout"),
    ("headers_then_stall", "first_token_timeout"),
    ("http_500", "http_500"),
    ("http_429", "rate_limited"),
]


@pytest.mark.parametrize(("fault", "reason"), BEFORE_FIRST_TOKEN)
async def test_it_falls_back_silently_before_the_first_token(fault: str, reason: str) -> None:
    async with fake(fault=fault) as (bad, bad_url), fake() as (_, good_url):
        primary = backend("primary", bad_url, first_token_timeout=0.6)
        async with gateway_of(primary, backend("secondary", good_url)) as gateway:
            started = time.monotonic()
            generation = gateway.generate(QUESTION)
            tokens, handovers = await collect(generation)
            elapsed = time.monotonic() - started
        if fault in ("blackhole", "headers_then_stall"):
            await asyncio.wait_for(bad.http.disconnected.wait(), 2)  # the stalled socket was closed
    result = generation.result
    assert "".join(tokens) == DEFAULT_TEXT
    assert not handovers and not result.handovers
    assert [(a.backend, a.outcome, a.reason) for a in result.attempts] == [
        ("primary", "failed", reason),
        ("secondary", "ok", ""),
    ]
    assert elapsed < 0.6 + 1.0, "the fallback happens within the configured timeout"


async def test_a_refused_connection_fails_over_within_the_connect_timeout() -> None:
    async with fake() as (_, good_url):
        async with gateway_of(backend("down", refused_url()), backend("up", good_url)) as gateway:
            generation = gateway.generate(QUESTION)
            await collect(generation)
    attempt = generation.result.attempts[0]
    assert attempt.reason == "connect_failed"
    assert attempt.duration_ms < 500 + 100
    assert generation.result.backend == "up"


async def test_an_unresolvable_host_fails_over() -> None:
    async with fake() as (_, good_url):
        dead = backend("dns", "http://no-such-host.invalid:8000/v1")
        async with gateway_of(dead, backend("up", good_url)) as gateway:
            generation = gateway.generate(QUESTION)
            await collect(generation)
    assert generation.result.attempts[0].reason in ("connect_failed", "connect_timeout")
    assert generation.result.text == DEFAULT_TEXT


async def test_an_unknown_model_on_an_openai_server_fails_over() -> None:
    async with fake() as (_, url):
        async with gateway_of(backend("wrong", url, model="no-such-model"), backend("right", url)) as gateway:
            generation = gateway.generate(QUESTION)
            await collect(generation)
    assert generation.result.attempts[0].reason == "model_not_found"


# --- failures after tokens reached the caller: continue, never restart --------------

MID_STREAM = [
    ("stall_mid_stream", "idle_timeout"),
    ("close_mid_stream", "connection_lost"),
    ("malformed", "malformed_stream"),
]


@pytest.mark.parametrize(("fault", "reason"), MID_STREAM)
async def test_a_mid_stream_failure_hands_over_and_continues_the_same_answer(fault: str, reason: str) -> None:
    async with (
        fake(fault=fault, fault_after_tokens=4) as (_, bad_url),
        fake(continue_from_partial=True) as (successor, good_url),
    ):
        async with gateway_of(backend("primary", bad_url), backend("secondary", good_url)) as gateway:
            generation = gateway.generate(QUESTION)
            tokens, handovers = await collect(generation)
    result = generation.result
    partial = "".join(split_tokens(DEFAULT_TEXT)[:4])
    assert "".join(tokens) == DEFAULT_TEXT, "one coherent answer, the start not repeated"
    assert handovers == [Handover("primary", "secondary")]
    first = result.attempts[0]
    assert (first.outcome, first.reason, first.tokens) == ("failed", reason, 4)
    assert result.attempts[1].continuation and result.attempts[1].outcome == "ok"
    sent = successor.http.requests[-1].json()["messages"]
    assert sent[-2] == {"role": "assistant", "content": partial}
    assert sent[-1]["role"] == "user" and "Continue" in sent[-1]["content"]


async def test_a_very_slow_stream_hits_the_total_timeout_and_hands_over() -> None:
    async with fake(fault="slow") as (_, slow_url), fake(continue_from_partial=True) as (_, good_url):
        slow = backend("slow", slow_url, idle_timeout=1.0, total_timeout=1.2)
        async with gateway_of(slow, backend("fast", good_url)) as gateway:
            started = time.monotonic()
            generation = gateway.generate(QUESTION)
            tokens, handovers = await collect(generation)
            elapsed = time.monotonic() - started
    assert generation.result.attempts[0].reason == "total_timeout"
    assert generation.result.attempts[0].tokens >= 2
    assert "".join(tokens) == DEFAULT_TEXT and handovers
    assert elapsed < 1.2 + 1.0


async def test_vllm_backends_continue_the_final_message_natively() -> None:
    async with (
        fake(fault="close_mid_stream") as (_, bad_url),
        fake(continue_from_partial=True) as (successor, good_url),
    ):
        vllm = backend("vllm", good_url, continue_final_message=True)
        async with gateway_of(backend("primary", bad_url), vllm) as gateway:
            generation = gateway.generate(QUESTION)
            await collect(generation)
    body = successor.http.requests[-1].json()
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert body["messages"][-1]["role"] == "assistant"
    assert generation.result.text == DEFAULT_TEXT


async def test_a_successor_that_starts_over_does_not_repeat_the_answer() -> None:
    async with (
        fake(fault="close_mid_stream", fault_after_tokens=5) as (_, bad_url),
        fake(continue_from_partial=True, restart=True) as (_, good_url),
    ):
        async with gateway_of(backend("a", bad_url), backend("b", good_url)) as gateway:
            generation = gateway.generate(QUESTION)
            tokens, _ = await collect(generation)
    assert "".join(tokens) == DEFAULT_TEXT


async def test_the_real_model_continues_a_partial_answer(local_llm: LocalLLMProcess) -> None:
    async with fake(fault="close_mid_stream", fault_after_tokens=6) as (_, bad_url):
        real = backend("local", local_llm.url, model="smollm2", first_token_timeout=30, idle_timeout=10)
        async with gateway_of(backend("primary", bad_url), real) as gateway:
            generation = gateway.generate(QUESTION, max_tokens=24)
            tokens, handovers = await collect(generation)
    partial = "".join(split_tokens(DEFAULT_TEXT)[:6])
    result = generation.result
    assert result.text.startswith(partial) and len(result.text) > len(partial)
    assert handovers == [Handover("primary", "local")] and result.backend == "local"
    assert "".join(tokens) == result.text


# --- cancellation ---------------------------------------------------------------------


async def test_stopping_the_stream_closes_the_upstream_connection_at_once() -> None:
    async with fake(fault="stall_mid_stream", fault_after_tokens=3) as (server, url):
        async with gateway_of(backend("only", url, idle_timeout=30)) as gateway:
            generation = gateway.generate(QUESTION)
            events = generation.events()
            for _ in range(3):
                await anext(events)
            started = time.monotonic()
            await events.aclose()  # what the consumer does when the user presses stop
            await asyncio.wait_for(server.http.disconnected.wait(), 1.0)
            observed = time.monotonic() - started
    assert observed < 0.5
    assert generation.result.cancelled
    assert generation.result.attempts[-1].outcome == "cancelled"


async def test_cancelling_the_task_closes_the_upstream_connection() -> None:
    async with fake(fault="stall_mid_stream", fault_after_tokens=2) as (server, url):
        async with gateway_of(backend("only", url, idle_timeout=30)) as gateway:
            generation = gateway.generate(QUESTION)
            task = asyncio.create_task(collect(generation))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(server.http.disconnected.wait(), 1.0)
            assert gateway.runtimes[0].in_flight == 0, "the concurrency slot was given back"


# --- last resort, busy, breaker --------------------------------------------------------


async def test_when_every_backend_fails_the_extractive_answer_is_streamed() -> None:
    extractive = 'The assistant is unavailable. From the policies: "Annual leave accrues monthly." [1]'
    async with fake(fault="http_500") as (_, url):
        async with gateway_of(backend("a", url), backend("b", refused_url())) as gateway:
            generation = gateway.generate(QUESTION, extractive=extractive)
            tokens, _ = await collect(generation)
    assert "".join(tokens) == extractive and len(tokens) > 3
    assert generation.result.fallback and generation.result.backend == "extractive"
    assert [a.reason for a in generation.result.attempts] == ["http_500", "connect_failed"]


async def test_a_half_finished_answer_ends_with_the_extractive_text_appended() -> None:
    async with fake(fault="close_mid_stream", fault_after_tokens=3) as (_, url):
        async with gateway_of(backend("a", url)) as gateway:
            generation = gateway.generate(QUESTION, extractive="Assistant unavailable.")
            await collect(generation)
    partial = "".join(split_tokens(DEFAULT_TEXT)[:3])
    assert generation.result.text == partial + "\n\nAssistant unavailable."


async def test_without_an_extractive_answer_it_reports_unavailable_with_attempts() -> None:
    async with gateway_of(backend("a", refused_url())) as gateway:
        with pytest.raises(GatewayUnavailable) as error:
            await collect(gateway.generate(QUESTION))
    assert [a.reason for a in error.value.attempts] == ["connect_failed"]


async def test_a_full_backend_sends_the_request_to_the_next_then_says_busy() -> None:
    async with fake(tokens_per_second=10) as (_, slow_url), fake() as (_, other_url):
        one_slot = backend("one", slow_url, max_concurrency=1, queue_timeout=0.2)
        async with gateway_of(one_slot, backend("other", other_url)) as gateway:
            holder = asyncio.create_task(collect(gateway.generate(QUESTION)))
            await asyncio.sleep(0.1)
            second = gateway.generate(QUESTION)
            await collect(second)
            await holder
        assert second.result.attempts[0].reason == "busy" and second.result.backend == "other"
        async with gateway_of(replace(one_slot)) as gateway:
            holder = asyncio.create_task(collect(gateway.generate(QUESTION)))
            await asyncio.sleep(0.1)
            with pytest.raises(GatewayBusy):
                await collect(gateway.generate(QUESTION, extractive="not used when merely busy"))
            await holder


async def test_the_breaker_opens_after_consecutive_failures_then_allows_one_trial() -> None:
    async with fake() as (_, good_url):
        port = free_port()
        flaky = backend("flaky", f"http://127.0.0.1:{port}/v1")
        async with gateway_of(
            flaky, backend("good", good_url), breaker_failures=2, breaker_cooldown=0.5
        ) as gw:
            for _ in range(2):
                await collect(gw.generate(QUESTION))
            skipped = gw.generate(QUESTION)
            await collect(skipped)
            assert skipped.result.attempts[0].reason == "circuit_open"
            assert gw.runtime("flaky").breaker.state.value == "open"
            await asyncio.sleep(0.6)
            assert gw.runtime("flaky").breaker.state.value == "half_open"
            trial = gw.generate(QUESTION)
            await collect(trial)
            assert trial.result.attempts[0].reason == "connect_failed", "one trial request was sent"
            assert gw.runtime("flaky").breaker.state.value == "open"


async def test_a_successful_trial_closes_the_breaker() -> None:
    server = FakeOpenAI()
    url = await server.start()
    port = server.http.port
    await server.stop()  # the backend is down...
    async with gateway_of(backend("b", url), breaker_failures=1, breaker_cooldown=0.3) as gw:
        with pytest.raises(GatewayUnavailable):
            await collect(gw.generate(QUESTION))
        assert gw.runtimes[0].breaker.state.value == "open"
        revived = FakeOpenAI()
        await revived.start(port=port)  # ...and comes back
        try:
            await asyncio.sleep(0.35)
            generation = gw.generate(QUESTION)
            await collect(generation)
        finally:
            await revived.stop()
    assert generation.result.backend == "b"
    assert gw.runtimes[0].breaker.state.value == "closed"


async def test_the_health_probe_records_models_and_failures() -> None:
    async with fake() as (_, url), gateway_of(backend("up", url), backend("down", refused_url())) as gw:
        await gw.probe_all()
        up, down = gw.snapshot()
    assert up["healthy"] is True and up["models"] == ["fake-model"]
    assert down["healthy"] is False and down["probe_error"] == "connect_failed"
