"""Per-user rate limits, shared by every web process through Redis."""

from __future__ import annotations

import asyncio
import time
import weakref

import redis.asyncio as aioredis
from django.conf import settings

_redis_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


def _redis() -> aioredis.Redis:
    """One asyncio client per event loop (a client's connections belong to its loop)."""
    loop = asyncio.get_running_loop()
    client = _redis_clients.get(loop)
    if client is None:
        client = _redis_clients[loop] = aioredis.Redis.from_url(settings.REDIS_URL)
    return client


async def rate_limited(*, user_id: int, action: str, per_minute: int) -> bool:
    """Fixed one-minute window per user and action ("ask", "feedback"), shared by every process
    through Redis.

    Async on purpose: on the event loop it costs one Redis round trip, where a sync call
    would queue behind every other socket's database calls on Channels' one sync thread.
    """
    window = int(time.time() // 60)
    key = f"policydesk:chat:rate:{action}:{user_id}:{window}"
    async with _redis().pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, 70)
        count, _ = await pipe.execute()
    return int(count) > per_minute


def rate_window_left() -> int:
    """Seconds until the current one-minute window ends and the count starts again (the
    `Retry-After` of a refused API request)."""
    return 60 - int(time.time()) % 60
