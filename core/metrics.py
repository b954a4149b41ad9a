"""Prometheus metrics, safe across several Daphne and Celery processes.

With `PROMETHEUS_MULTIPROC_DIR` set (the runner and the deployment set it), every process
writes its samples to files there and `/metrics` aggregates them; without it, the process's
own registry is served (tests, a single dev process).
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

QUESTIONS = Counter("policydesk_questions_total", "Questions answered, by outcome", ["outcome"])
TIME_TO_FIRST_TOKEN = Histogram(
    "policydesk_time_to_first_token_seconds", "Question received to first token sent", buckets=LATENCY_BUCKETS
)
ANSWER_SECONDS = Histogram(
    "policydesk_answer_seconds", "Question received to answer done", buckets=LATENCY_BUCKETS
)
TOKENS_STREAMED = Counter("policydesk_tokens_streamed_total", "Tokens streamed to users")
STAGE_SECONDS = Histogram(
    "policydesk_stage_seconds", "Pipeline stage durations (redaction, retrieval, prompt)", ["stage"],
    buckets=STAGE_BUCKETS,
)  # fmt: skip
LLM_ATTEMPTS = Counter(
    "policydesk_llm_attempts_total", "LLM attempts by backend and outcome", ["backend", "outcome"]
)
LLM_FALLBACKS = Counter(
    "policydesk_llm_fallbacks_total", "Answers that needed another backend or the extractive text"
)
LLM_HANDOVERS = Counter("policydesk_llm_handovers_total", "Answers continued on another backend mid-stream")
BREAKER_STATE = Gauge(
    "policydesk_llm_breaker_state", "Circuit breaker per backend: 0 closed, 1 half-open, 2 open", ["backend"],
    multiprocess_mode="max",
)  # fmt: skip
WEBSOCKETS = Gauge(
    "policydesk_websocket_connections", "Open WebSocket connections", multiprocess_mode="livesum"
)
INGESTION_JOBS = Counter("policydesk_ingestion_jobs_total", "Ingestion jobs by final state", ["state"])
INGESTION_SECONDS = Histogram(
    "policydesk_ingestion_seconds", "Ingestion job duration", buckets=(1, 2.5, 5, 10, 30, 60, 120, 300, 600)
)
BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}


def enabled() -> bool:
    return bool(getattr(settings, "METRICS_ENABLED", True))


class CeleryQueueCollector(Collector):
    """Queue lengths read from the broker at scrape time (Redis lists named after queues)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "policydesk_celery_queue_length", "Tasks waiting per Celery queue", labels=["queue"]
        )
        try:
            import redis

            client = redis.Redis.from_url(
                settings.CELERY_BROKER_URL, socket_timeout=1, socket_connect_timeout=1
            )
            for queue in ("ingestion", "housekeeping"):
                family.add_metric([queue], float(client.llen(queue)))
        except Exception:  # the broker being down is /readyz's to report, not a scrape failure
            logging.getLogger(__name__).warning("could not read Celery queue lengths")
        yield family


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return registry


_queue_collector = CeleryQueueCollector()


def operator_request(request: HttpRequest) -> bool:
    """A staff session, or `Authorization: Bearer <POLICYDESK_METRICS_TOKEN>` (Prometheus)."""
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    by_token = bool(token) and hmac.compare_digest(header, f"Bearer {token}")
    return by_token or (request.user.is_authenticated and request.user.is_staff)


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not operator_request(request):
        return HttpResponse("metrics need a staff session or the bearer token\n", status=401)
    registry = _registry()
    body = generate_latest(registry) + generate_latest(_QueueRegistry())
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


class _QueueRegistry(CollectorRegistry):
    def __init__(self) -> None:
        super().__init__(auto_describe=False)
        self.register(_queue_collector)
