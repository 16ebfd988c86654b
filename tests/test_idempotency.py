"""Idempotency-Key records: first / replay / wait / conflict / abandon, leases and TTLs in
virtual time, concurrency, and the Redis-shared store (two stores stand for two replicas) with
its local fallback.

Redis tests skip with the reason when there is no Redis, except when CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from servers import TcpRelay
from test_cache import prefix  # noqa: F401  (fixture)
from xvckit.gateway.cache import CachedResponse
from xvckit.gateway.dialects import GatewayError
from xvckit.gateway.idempotency import (
    Begin,
    IdempotencyStore,
    RedisIdempotencyStore,
    conflict_error,
    in_progress_error,
    request_hash,
    scoped_key,
)
from xvckit.providers import Usage

BODY = {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
HASH = request_hash(BODY)
OTHER = request_hash({**BODY, "max_tokens": 11})
ANSWER = CachedResponse(
    200, [(b"content-type", b"application/json")], b'{"id": "chatcmpl-1"}', False, Usage(5, 2)
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- helpers ---------------------------------------------------------------------------------


def test_scoped_keys_are_per_caller_and_validated() -> None:
    key = scoped_key("key_a", b"retry-123")
    assert len(key) == 64 and key == scoped_key("key_a", "retry-123")
    assert key != scoped_key("key_b", b"retry-123") != scoped_key(None, b"retry-123")
    assert scoped_key("key_a", b"x" * 255)
    for bad in (b"", b"x" * 256, b"tab\there", "caf\u00e9".encode()):
        with pytest.raises(GatewayError) as caught:
            scoped_key("key_a", bad)
        assert caught.value.status == 400 and caught.value.code == "invalid_idempotency_key"


def test_request_hash_ignores_key_order_only() -> None:
    assert request_hash(dict(reversed(list(BODY.items())))) == HASH
    assert request_hash({**BODY, "stream": True}) != HASH
    assert request_hash({**BODY, "user": "u"}) != HASH
    assert conflict_error().status == 422
    assert in_progress_error(3).status == 409 and in_progress_error(3).headers == {"retry-after": "3"}


# --- in this process -------------------------------------------------------------------------


async def test_first_replay_and_conflict() -> None:
    store = IdempotencyStore()
    assert await store.begin("k", HASH) is Begin.first
    assert await store.begin("k", HASH) is Begin.wait
    assert await store.begin("k", OTHER) is Begin.conflict  # another body, even while in flight
    await store.finish("k", ANSWER)
    assert await store.begin("k", HASH) == Begin.replay(ANSWER)
    assert (await store.begin("k", HASH)).kind == "replay"
    assert await store.begin("k", OTHER) is Begin.conflict
    assert store.stats() == {"pending": 0, "finished": 1, "bytes": ANSWER.size}


async def test_waiters_get_the_owners_answer() -> None:
    store = IdempotencyStore()
    assert await store.begin("k", HASH) is Begin.first
    waiters = [asyncio.create_task(store.wait_for("k", 5)) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    await store.finish("k", ANSWER)
    assert await asyncio.gather(*waiters) == [ANSWER] * 3
    assert await store.wait_for("k", 5) is ANSWER  # finished: at once


async def test_abandon_lets_the_next_retry_proceed() -> None:
    store = IdempotencyStore()
    assert await store.begin("k", HASH) is Begin.first
    waiter = asyncio.create_task(store.wait_for("k", 5))
    await asyncio.sleep(0)
    await store.abandon("k")
    assert await waiter is None  # nothing to give: begin again
    assert await store.begin("k", HASH) is Begin.first
    assert await store.begin("k", OTHER) is Begin.conflict  # the new owner's body counts
    await store.abandon("k")
    assert await store.begin("k", OTHER) is Begin.first


async def test_wait_times_out() -> None:
    store = IdempotencyStore()
    await store.begin("k", HASH)
    started = time.perf_counter()
    assert await store.wait_for("k", 0.05) is None
    assert 0.04 < time.perf_counter() - started < 1
    assert await store.wait_for("missing", 5) is None


async def test_lease_and_ttl_run_out_in_virtual_time() -> None:
    clock = Clock()
    store = IdempotencyStore(lease_s=30, clock=clock)
    assert await store.begin("k", HASH, ttl_s=100) is Begin.first
    clock.now += 29.95
    assert await store.begin("k", HASH) is Begin.wait
    started = time.perf_counter()
    assert await store.wait_for("k", 60) is None  # no waiting past the lease's end, 0.05 s away
    assert time.perf_counter() - started < 1
    clock.now += 0.05
    assert await store.begin("k", HASH, ttl_s=100) is Begin.first  # the owner is presumed dead
    await store.finish("k", ANSWER)
    clock.now += 99.9
    assert (await store.begin("k", HASH)).kind == "replay"
    clock.now += 0.1
    assert await store.begin("k", OTHER) is Begin.first  # the result expired: the key is free
    assert "k" in store
    clock.now += 1000  # the next begin sweeps expired records away
    await store.begin("other", HASH)
    assert store.stats() == {"pending": 1, "finished": 0, "bytes": 0}


async def test_fifty_concurrent_begins_one_first() -> None:
    store = IdempotencyStore()

    async def client() -> CachedResponse | str:
        begun = await store.begin("k", HASH)
        if begun is Begin.first:
            await asyncio.sleep(0.01)  # the upstream call
            await store.finish("k", ANSWER)
            return "first"
        assert begun is Begin.wait
        return await store.wait_for("k", 5)

    results = await asyncio.gather(*(client() for _ in range(50)))
    assert results.count("first") == 1
    assert results.count(ANSWER) == 49


async def test_finished_results_bounded_by_bytes() -> None:
    store = IdempotencyStore(max_bytes=3 * ANSWER.size)
    for n in range(4):
        await store.begin(f"k{n}", HASH)
    await store.begin("pending", HASH)
    for n in range(4):
        await store.finish(f"k{n}", ANSWER)
    assert await store.begin("k0", HASH) is Begin.first  # the oldest result went
    assert [(await store.begin(f"k{n}", HASH)).kind for n in (1, 2, 3)] == ["replay"] * 3
    assert await store.begin("pending", HASH) is Begin.wait  # pending records are never evicted
    assert store.stats()["bytes"] == 3 * ANSWER.size


async def test_finish_and_abandon_of_unknown_keys_do_nothing() -> None:
    store = IdempotencyStore()
    await store.finish("nobody", ANSWER)
    await store.abandon("nobody")
    await store.begin("k", HASH)
    await store.finish("k", ANSWER)
    await store.abandon("k")  # finished: stays
    await store.finish("k", CachedResponse(500, [], b""))  # finished once: stays
    assert await store.begin("k", HASH) == Begin.replay(ANSWER)


# --- shared through Redis --------------------------------------------------------------------


@pytest.fixture
async def replicas(redis_url, prefix):  # noqa: F811
    made: list[RedisIdempotencyStore] = []

    def make(url: str = redis_url, **kwargs) -> RedisIdempotencyStore:
        kwargs.setdefault("timeout_s", 2.0)
        store = RedisIdempotencyStore(url, prefix=prefix, **kwargs)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.aclose()


async def test_redis_two_replicas_share_keys(replicas) -> None:
    one, two = replicas(), replicas()
    assert await one.begin("k", HASH) is Begin.first
    assert await two.begin("k", HASH) is Begin.wait
    assert await two.begin("k", OTHER) is Begin.conflict
    waiter = asyncio.create_task(two.wait_for("k", 5))
    await asyncio.sleep(0.05)
    await one.finish("k", ANSWER)
    assert await asyncio.wait_for(waiter, 1) == ANSWER  # polled from the other replica
    assert await two.begin("k", HASH) == Begin.replay(ANSWER)
    assert await one.begin("k", OTHER) is Begin.conflict
    assert one.degraded is None and two.degraded is None


async def test_redis_abandon_frees_the_key_for_another_replica(replicas) -> None:
    one, two = replicas(), replicas()
    assert await one.begin("k", HASH) is Begin.first
    waiter = asyncio.create_task(two.wait_for("k", 5))
    await asyncio.sleep(0.05)
    await one.abandon("k")
    assert await asyncio.wait_for(waiter, 1) is None
    assert await two.begin("k", HASH) is Begin.first
    await one.abandon("k")  # not the owner any more: nothing happens
    assert await one.begin("k", HASH) is Begin.wait
    await two.finish("k", ANSWER)
    assert await one.begin("k", HASH) == Begin.replay(ANSWER)


async def test_redis_fifty_concurrent_begins_across_two_replicas_one_first(replicas) -> None:
    stores = [replicas(), replicas()]

    async def client(n: int) -> CachedResponse | str:
        store = stores[n % 2]
        begun = await store.begin("k", HASH)
        if begun is Begin.first:
            await asyncio.sleep(0.05)
            await store.finish("k", ANSWER)
            return "first"
        assert begun is Begin.wait
        return await store.wait_for("k", 5)

    results = await asyncio.gather(*(client(n) for n in range(50)))
    assert results.count("first") == 1
    assert results.count(ANSWER) == 49


async def test_redis_waiter_in_the_owners_process_is_woken_at_once(replicas) -> None:
    store = replicas(poll_s=5.0)
    assert await store.begin("k", HASH) is Begin.first
    waiter = asyncio.create_task(store.wait_for("k", 10))
    await asyncio.sleep(0.35)  # the waiter's polls are 0.32 s apart by now
    await store.finish("k", ANSWER)
    assert await asyncio.wait_for(waiter, 0.1) == ANSWER


async def test_redis_lease_runs_out_and_the_late_owner_does_not_overwrite(replicas) -> None:
    one, two = replicas(lease_s=0.2), replicas(lease_s=0.2)
    assert await one.begin("k", HASH) is Begin.first
    await asyncio.sleep(0.3)
    assert await two.begin("k", HASH) is Begin.first  # the first owner is presumed dead
    late = CachedResponse(200, [], b'{"late": true}')
    await one.finish("k", late)  # the key is the second owner's now
    assert await one.begin("k", HASH) is Begin.wait
    await two.finish("k", ANSWER)
    assert await one.begin("k", HASH) == Begin.replay(ANSWER)


async def test_redis_owner_whose_lease_ran_out_still_stores_a_free_key(replicas) -> None:
    store = replicas(lease_s=0.1)
    assert await store.begin("k", HASH) is Begin.first
    await asyncio.sleep(0.2)
    await store.finish("k", ANSWER)
    assert await replicas().begin("k", HASH) == Begin.replay(ANSWER)


async def test_redis_result_ttl(replicas, redis_url, prefix) -> None:  # noqa: F811
    store = replicas()
    await store.begin("k", HASH, ttl_s=0.2)
    await store.finish("k", ANSWER)
    client = aioredis.Redis.from_url(redis_url)
    assert 0 < await client.pttl(prefix + "k") <= 200
    await client.aclose()
    await asyncio.sleep(0.3)
    assert await store.begin("k", HASH) is Begin.first


async def test_redis_down_works_locally_and_says_so() -> None:
    store = RedisIdempotencyStore("redis://127.0.0.1:1/0", timeout_s=0.2, retry_s=60)
    try:
        assert await store.begin("k", HASH) is Begin.first
        assert store.degraded is not None and "Redis unavailable" in store.degraded
        assert await store.begin("k", HASH) is Begin.wait
        assert await store.begin("k", OTHER) is Begin.conflict
        waiter = asyncio.create_task(store.wait_for("k", 5))
        await asyncio.sleep(0)
        await store.finish("k", ANSWER)
        assert await waiter == ANSWER
        assert await store.begin("k", HASH) == Begin.replay(ANSWER)
        assert store.stats() == {
            "pending": 0,
            "finished": 1,
            "bytes": ANSWER.size,
            "owned": 0,
            "degraded": store.degraded,
        }
    finally:
        await store.aclose()


async def test_redis_outage_results_are_handed_over_when_it_returns(replicas, redis_url) -> None:
    proxy = TcpRelay(int(redis_url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]))
    await proxy.start()
    store = replicas(f"redis://127.0.0.1:{proxy.port}/0", timeout_s=0.5, retry_s=0.1)
    other = replicas()
    try:
        assert await store.begin("shared", HASH) is Begin.first  # in Redis
        await proxy.cut()
        await store.finish("shared", ANSWER)  # Redis gone: kept locally
        assert store.degraded is not None
        assert await store.begin("shared", HASH) == Begin.replay(ANSWER)
        assert await store.begin("during", HASH) is Begin.first  # local
        await store.finish("during", ANSWER)
        assert await store.begin("late", HASH) is Begin.first  # local, still in flight at recovery
        assert await other.begin("during", HASH) is Begin.first  # the outage: not known elsewhere
        await other.abandon("during")
        await proxy.start()
        for _ in range(50):
            await asyncio.sleep(0.05)
            await store.begin("probe", HASH)  # a call while degraded starts the probe when due
            if store.degraded is None:
                break
        assert store.degraded is None
        assert await other.begin("during", HASH) == Begin.replay(ANSWER)  # handed over
        assert await other.begin("shared", HASH) == Begin.replay(ANSWER)
        assert await store.begin("late", HASH) is Begin.wait  # still known locally
        await store.finish("late", ANSWER)  # finished after recovery: to Redis as well
        assert await other.begin("late", HASH) == Begin.replay(ANSWER)
    finally:
        await proxy.cut()
