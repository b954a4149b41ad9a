"""The LLM gateway: the one place that talks to runtimes.

Business code asks for a token stream and never learns which runtime answered:

    generation = get_gateway().generate(messages, extractive=fallback_text)
    async for event in generation.events():   # Token | Handover
        ...
    generation.result                          # backend, attempts, tokens, usage

Backends are tried in the configured order. Before the first token a failure moves on
silently; after tokens reached the caller the answer is *continued* on the next backend
(never restarted) and a `Handover` event says so. When every backend fails the caller's
extractive text is streamed instead. Closing the event stream (stop, socket closed)
closes the upstream HTTP response at once, which makes the runtime stop generating.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum

import httpx

from llm.adapters import BackendError, Delta, Message, list_models, stream_for
from llm.config import BackendConfig, llm_backends
from llm.transport import transport_for

logger = logging.getLogger(__name__)

CONTINUE_INSTRUCTION = (
    "Your previous answer was cut off. Continue it exactly where it stopped: do not repeat "
    "anything already written, do not start over, do not comment on the interruption."
)
MIN_CONTINUATION_TOKENS = 32
# However many streams a process relays, each one is still read at least this often.
MAX_STREAM_INTERVAL = 0.5


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class Breaker:
    """Consecutive-failure circuit breaker: open for `cooldown` s, then one trial request."""

    threshold: int
    cooldown: float
    failures: int = 0
    opened_at: float | None = None
    trial_in_flight: bool = False
    last_error: str = ""

    @property
    def state(self) -> BreakerState:
        if self.opened_at is None:
            return BreakerState.CLOSED
        if self.trial_in_flight or time.monotonic() - self.opened_at >= self.cooldown:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        state = self.state
        if state == BreakerState.CLOSED:
            return True
        if state == BreakerState.HALF_OPEN and not self.trial_in_flight:
            self.trial_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        self.failures, self.opened_at, self.trial_in_flight = 0, None, False

    def record_failure(self, reason: str) -> None:
        self.failures += 1
        self.last_error = reason
        if self.trial_in_flight or self.failures >= self.threshold:
            self.opened_at = time.monotonic()
        self.trial_in_flight = False

    def release_trial(self) -> None:
        """A trial that ended without a verdict (the caller cancelled) frees the slot."""
        self.trial_in_flight = False


@dataclass
class Attempt:
    backend: str
    outcome: str  # ok | failed | skipped | cancelled
    reason: str = ""
    ttft_ms: float | None = None
    tokens: int = 0
    duration_ms: float = 0.0
    continuation: bool = False


@dataclass
class GenerationResult:
    text: str = ""
    backend: str | None = None  # the backend that finished the answer, or "extractive"
    attempts: list[Attempt] = field(default_factory=list)
    handovers: list[tuple[str, str]] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int = 0
    ttft_ms: float | None = None
    fallback: bool = False
    cancelled: bool = False

    def attempts_as_dicts(self) -> list[dict[str, object]]:
        return [asdict(a) for a in self.attempts]


@dataclass(frozen=True)
class Token:
    text: str


@dataclass(frozen=True)
class Handover:
    from_backend: str
    to_backend: str


class GatewayError(Exception):
    def __init__(self, message: str, attempts: list[Attempt]) -> None:
        super().__init__(message)
        self.attempts = attempts


class GatewayBusy(GatewayError):
    """Every backend's concurrency slots stayed taken for longer than its queue timeout."""


class GatewayUnavailable(GatewayError):
    """Every backend failed and the caller gave no extractive fallback."""


@dataclass
class BackendRuntime:
    config: BackendConfig
    client: httpx.AsyncClient
    slots: asyncio.Semaphore
    breaker: Breaker
    in_flight: int = 0
    healthy: bool | None = None  # None until the first probe
    models: list[str] = field(default_factory=list)
    last_probe: float | None = None
    probe_error: str = ""


def _http_failure(exc: httpx.HTTPError) -> BackendError:
    if isinstance(exc, httpx.ConnectTimeout):
        return BackendError("connect_timeout", str(exc))
    if isinstance(exc, httpx.ConnectError):
        # Refused, reset, DNS failure and TLS handshake errors all surface here.
        return BackendError("connect_failed", str(exc) or type(exc).__name__)
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return BackendError("connection_lost", str(exc) or type(exc).__name__)
    return BackendError("http_error", f"{type(exc).__name__}: {exc}")


def continuation_messages(messages: Sequence[Message], partial: str, backend: BackendConfig) -> list[Message]:
    with_partial = [*messages, {"role": "assistant", "content": partial}]
    if backend.continue_final_message:
        return with_partial
    return [*with_partial, {"role": "user", "content": CONTINUE_INSTRUCTION}]


class RestartTrimmer:
    """Drops a continuation's verbatim repeat of the partial answer (small models restart).

    Text is held back only while it is still a prefix of what was already sent; the
    moment it diverges (the normal case, on the first token) it flows through.
    """

    def __init__(self, partial: str) -> None:
        self.partial = partial
        self.buffer = ""
        self.passing = not partial

    def feed(self, text: str) -> str:
        if self.passing:
            return text
        self.buffer += text
        if self.partial.startswith(self.buffer):
            return ""  # still repeating, or too short to tell
        self.passing = True
        if self.buffer.startswith(self.partial):
            return self.buffer[len(self.partial) :]
        return self.buffer

    def flush(self) -> str:
        if self.passing:
            return ""
        self.passing = True
        return "" if self.partial.startswith(self.buffer) else self.buffer


class Generation:
    def __init__(
        self,
        gateway: Gateway,
        messages: Sequence[Message],
        *,
        extractive: str | None,
        max_tokens: int | None,
        temperature: float | None = None,
    ) -> None:
        self.gateway = gateway
        self.messages = list(messages)
        self.extractive = extractive
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.result = GenerationResult()
        self._started = time.perf_counter()
        self._enough = False

    def enough(self) -> None:
        """The caller has all it wants (a one-sentence summary): closing the stream now ends the
        attempt as a success, not as a stopped answer."""
        self._enough = True

    def _elapsed_ms(self) -> float:
        return (time.perf_counter() - self._started) * 1000

    async def events(self) -> AsyncGenerator[Token | Handover, None]:
        result = self.result
        last_backend: str | None = None
        busy_only = True
        for runtime in self.gateway.runtimes:
            name = runtime.config.name
            if not runtime.breaker.allow():
                result.attempts.append(Attempt(name, "skipped", "circuit_open"))
                busy_only = False
                continue
            if not await self.gateway.acquire(runtime):
                result.attempts.append(Attempt(name, "skipped", "busy"))
                if runtime.breaker.trial_in_flight:
                    runtime.breaker.release_trial()
                continue
            busy_only = False
            try:
                async for event in self._attempt(runtime, last_backend):
                    yield event
            finally:
                self.gateway.release(runtime)
            if result.backend is not None:
                return
            if result.attempts[-1].tokens:
                last_backend = name  # only a backend that sent tokens is handed over from
        if busy_only and not result.text:
            raise GatewayBusy("every LLM backend is busy", result.attempts)
        if self.extractive is None:
            raise GatewayUnavailable("every LLM backend failed", result.attempts)
        async for event in self._extractive():
            yield event

    async def _attempt(
        self, runtime: BackendRuntime, handing_over_from: str | None
    ) -> AsyncGenerator[Token | Handover, None]:
        backend = runtime.config
        continuing = bool(self.result.text)
        attempt = Attempt(backend.name, "failed", continuation=continuing)
        self.result.attempts.append(attempt)
        messages = (
            continuation_messages(self.messages, self.result.text, backend) if continuing else self.messages
        )
        started = time.perf_counter()
        finished = False
        try:
            deltas = self._deltas(runtime, messages, continuing, self._budget(backend, continuing), attempt)
            async with contextlib.aclosing(deltas) as it:
                async for out in self._relay(it, attempt, continuing, handing_over_from):
                    yield out
            finished = True
            self._attempt_succeeded(runtime, attempt)
        except BackendError as exc:
            self._attempt_failed(runtime, attempt, exc)
        except (asyncio.CancelledError, GeneratorExit):
            self._attempt_interrupted(runtime, attempt)
            raise
        finally:
            attempt.duration_ms = round((time.perf_counter() - started) * 1000, 1)
            _observe_breaker(runtime)
            if not finished and attempt.outcome == "failed" and not attempt.reason:
                attempt.reason = "aborted"

    def _budget(self, backend: BackendConfig, continuing: bool) -> int:
        """Tokens this attempt may write: a continuation gets what the earlier ones left."""
        # A caller's limit may lower a backend's own, never raise it.
        budget = min(self.max_tokens, backend.max_tokens) if self.max_tokens else backend.max_tokens
        if continuing:
            budget = max(MIN_CONTINUATION_TOKENS, budget - self.result.completion_tokens)
        return budget

    async def _relay(
        self,
        deltas: AsyncIterator[Delta],
        attempt: Attempt,
        continuing: bool,
        handing_over_from: str | None,
    ) -> AsyncGenerator[Token | Handover, None]:
        """The backend's deltas as tokens for the caller, a continuation's restart trimmed."""
        result = self.result
        trimmer = RestartTrimmer(result.text if continuing else "")
        async for delta in deltas:
            text = trimmer.feed(delta.text)
            if not text:
                continue
            if attempt.tokens == 0 and continuing and handing_over_from:
                result.handovers.append((handing_over_from, attempt.backend))
                yield Handover(handing_over_from, attempt.backend)
            attempt.tokens += delta.events
            result.completion_tokens += delta.events
            if result.ttft_ms is None:
                result.ttft_ms = self._elapsed_ms()
            result.text += text
            yield Token(text)
        tail = trimmer.flush()
        if tail:
            result.text += tail
            yield Token(tail)

    def _attempt_succeeded(self, runtime: BackendRuntime, attempt: Attempt) -> None:
        attempt.outcome = "ok"
        self.result.backend = runtime.config.name
        runtime.breaker.record_success()
        logger.info(
            "llm attempt succeeded",
            extra={"backend": runtime.config.name, "ttft_ms": attempt.ttft_ms, "tokens": attempt.tokens},
        )

    def _attempt_failed(self, runtime: BackendRuntime, attempt: Attempt, exc: BackendError) -> None:
        attempt.reason = exc.reason
        runtime.breaker.record_failure(exc.reason)
        logger.warning(
            "llm attempt failed",
            extra={"backend": runtime.config.name, "reason": exc.reason, "tokens": attempt.tokens},
        )

    def _attempt_interrupted(self, runtime: BackendRuntime, attempt: Attempt) -> None:
        """Cancelled by the caller: a success when the caller had enough, else a stop."""
        if self._enough:
            attempt.outcome, self.result.backend = "ok", runtime.config.name
            runtime.breaker.record_success()
            return
        attempt.outcome, attempt.reason = "cancelled", "caller_stopped"
        self.result.cancelled = True
        runtime.breaker.release_trial()

    async def _deltas(
        self,
        runtime: BackendRuntime,
        messages: list[Message],
        continuing: bool,
        max_tokens: int,
        attempt: Attempt,
    ) -> AsyncGenerator[Delta, None]:
        """Deltas with text of one upstream stream, under first-token, idle and total timeouts."""
        backend, result = runtime.config, self.result
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + backend.total_timeout
        sampled = replace(backend, temperature=self.temperature) if self.temperature is not None else backend
        stream = stream_for(
            runtime.client,
            sampled,
            messages,
            continuing=continuing,
            max_tokens=max_tokens,
            interval=lambda: self.gateway.stream_interval(backend),
        )
        first = True
        try:
            while True:
                wait = backend.first_token_timeout if first else backend.idle_timeout
                wait = min(wait, deadline - loop.time())
                if wait <= 0:
                    raise BackendError("total_timeout", f"{backend.total_timeout}s")
                try:
                    async with asyncio.timeout(wait):
                        delta = await anext(stream)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    if loop.time() >= deadline - 0.001:
                        raise BackendError("total_timeout", f"{backend.total_timeout}s") from None
                    which = "first_token_timeout" if first else "idle_timeout"
                    raise BackendError(which, f"{wait:.2f}s") from None
                except httpx.HTTPError as exc:
                    raise _http_failure(exc) from None
                if delta.prompt_tokens is not None:
                    result.prompt_tokens = delta.prompt_tokens
                if delta.finish_reason:
                    result.finish_reason = delta.finish_reason
                if delta.text:
                    if first:
                        attempt.ttft_ms = round((loop.time() - started) * 1000, 1)
                    first = False
                    yield delta
        finally:
            await stream.aclose()

    async def _extractive(self) -> AsyncGenerator[Token, None]:
        result = self.result
        result.backend, result.fallback = "extractive", True
        if not self.extractive:
            return  # the caller already showed what it had (evidence mode)
        text = ("\n\n" if result.text else "") + self.extractive
        # Streamed in word-sized pieces so the client renders it like any other answer.
        pieces = text.split(" ")
        for i, piece in enumerate(pieces):
            chunk = piece if i == len(pieces) - 1 else piece + " "
            if not chunk:
                continue
            result.text += chunk
            if result.ttft_ms is None:
                result.ttft_ms = self._elapsed_ms()
            yield Token(chunk)


def _observe_breaker(runtime: BackendRuntime) -> None:
    from core import metrics

    if metrics.enabled():
        metrics.BREAKER_STATE.labels(runtime.config.name).set(
            metrics.BREAKER_VALUES[runtime.breaker.state.value]
        )


class Gateway:
    def __init__(
        self,
        backends: Sequence[BackendConfig],
        *,
        breaker_failures: int = 3,
        breaker_cooldown: float = 30.0,
        probe_interval: float = 0.0,
        stream_reads_per_second: int = 0,
    ) -> None:
        self.stream_reads_per_second = stream_reads_per_second
        self.runtimes = [
            BackendRuntime(
                config=backend,
                client=httpx.AsyncClient(
                    base_url=backend.base_url,
                    # Read timeouts are the gateway's own (first token, idle, total).
                    timeout=httpx.Timeout(connect=backend.connect_timeout, read=None, write=10.0, pool=None),
                    transport=transport_for(
                        backend.base_url,
                        limits=httpx.Limits(
                            max_connections=backend.max_concurrency + 2,
                            max_keepalive_connections=backend.max_concurrency,
                        ),
                    ),
                ),
                slots=asyncio.Semaphore(backend.max_concurrency),
                breaker=Breaker(threshold=breaker_failures, cooldown=breaker_cooldown),
            )
            for backend in backends
        ]
        self.probe_interval = probe_interval
        self._probe_task: asyncio.Task[None] | None = None

    def runtime(self, name: str) -> BackendRuntime:
        return next(r for r in self.runtimes if r.config.name == name)

    def likely_backend(self) -> BackendConfig | None:
        """The backend a request made now would try first: the first whose breaker is not open
        (the answer's shape is chosen for it before generation starts)."""
        for runtime in self.runtimes:
            if runtime.breaker.state != BreakerState.OPEN:
                return runtime.config
        return None

    def stream_interval(self, backend: BackendConfig) -> float:
        """The backend's stream interval, stretched when this process relays more streams than
        its read budget (`stream_reads_per_second`, 0: never stretched) allows: past that,
        each stream is read less often rather than every stream's first token coming late."""
        if not self.stream_reads_per_second:
            return backend.stream_interval
        streams = sum(r.in_flight for r in self.runtimes)
        # Below half the idle timeout, so a paced wait never looks like a stalled backend.
        ceiling = min(MAX_STREAM_INTERVAL, backend.idle_timeout / 2)
        return max(backend.stream_interval, min(streams / self.stream_reads_per_second, ceiling))

    def generate(
        self,
        messages: Sequence[Message],
        *,
        extractive: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Generation:
        """`max_tokens` lowers each backend's own limit (never raises it); `temperature`
        replaces each backend's configured one."""
        self.start_probing()
        return Generation(
            self, messages, extractive=extractive, max_tokens=max_tokens, temperature=temperature
        )

    async def acquire(self, runtime: BackendRuntime) -> bool:
        try:
            async with asyncio.timeout(runtime.config.queue_timeout or None):
                await runtime.slots.acquire()
        except TimeoutError:
            return False
        runtime.in_flight += 1
        return True

    def release(self, runtime: BackendRuntime) -> None:
        runtime.in_flight -= 1
        runtime.slots.release()

    async def probe(self, runtime: BackendRuntime, *, timeout: float | None = None) -> None:
        """Health probe: the model list. A failure counts toward the breaker like a request."""
        try:
            async with asyncio.timeout(timeout or runtime.config.connect_timeout + 3.0):
                runtime.models = await list_models(runtime.client, runtime.config)
        except (BackendError, httpx.HTTPError, TimeoutError) as exc:
            if isinstance(exc, httpx.HTTPError):
                exc = _http_failure(exc)
            reason = exc.reason if isinstance(exc, BackendError) else "probe_timeout"
            runtime.healthy, runtime.probe_error = False, reason
            if runtime.breaker.state == BreakerState.CLOSED:
                runtime.breaker.record_failure(f"probe: {reason}")
        else:
            runtime.healthy, runtime.probe_error = True, ""
            if runtime.breaker.state == BreakerState.CLOSED:
                runtime.breaker.failures = 0
        runtime.last_probe = time.time()

    async def probe_all(self) -> None:
        await asyncio.gather(*(self.probe(r) for r in self.runtimes))
        publish_snapshot(self)

    def start_probing(self) -> None:
        if self.probe_interval <= 0 or (self._probe_task and not self._probe_task.done()):
            return
        self._probe_task = asyncio.get_running_loop().create_task(self._probe_loop())

    async def _probe_loop(self) -> None:
        while True:
            try:
                await self.probe_all()
            except Exception:  # a probe must never kill the loop
                logger.exception("llm health probe failed")
            await asyncio.sleep(self.probe_interval)

    def snapshot(self) -> list[dict[str, object]]:
        return [
            {
                "name": r.config.name,
                "kind": r.config.kind,
                "model": r.config.model,
                "base_url": r.config.base_url,
                "breaker": r.breaker.state.value,
                "failures": r.breaker.failures,
                "last_error": r.breaker.last_error,
                "healthy": r.healthy,
                "probe_error": r.probe_error,
                "models": r.models,
                "in_flight": r.in_flight,
                "max_concurrency": r.config.max_concurrency,
                "last_probe": r.last_probe,
            }
            for r in self.runtimes
        ]

    async def aclose(self) -> None:
        if self._probe_task:
            self._probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe_task
        await asyncio.gather(*(r.client.aclose() for r in self.runtimes))


SNAPSHOT_KEY = "llm:backends"


def publish_snapshot(gateway: Gateway) -> None:
    """Share breaker/health state with other processes (status page, /readyz)."""
    from django.core.cache import cache

    try:
        cache.set(SNAPSHOT_KEY, {"at": time.time(), "backends": gateway.snapshot()}, timeout=300)
    except Exception:  # Redis down must not break answering; /readyz reports Redis itself
        logger.warning("could not publish llm backend snapshot")


_gateways: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Gateway] = weakref.WeakKeyDictionary()


def get_gateway() -> Gateway:
    """One gateway per event loop: httpx clients and semaphores belong to a loop."""
    from django.conf import settings

    loop = asyncio.get_running_loop()
    gateway = _gateways.get(loop)
    if gateway is None:
        gateway = Gateway(
            llm_backends(),
            breaker_failures=settings.LLM_BREAKER_FAILURES,
            breaker_cooldown=settings.LLM_BREAKER_COOLDOWN,
            probe_interval=settings.LLM_PROBE_INTERVAL,
            stream_reads_per_second=settings.LLM_STREAM_READS_PER_SECOND,
        )
        _gateways[loop] = gateway
    return gateway


async def gateway_reset() -> None:
    """Drop this loop's gateway (settings changed: tests, a reload); the next call rebuilds it."""
    gateway = _gateways.pop(asyncio.get_running_loop(), None)
    if gateway is not None:
        await gateway.aclose()
