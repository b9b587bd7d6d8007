"""Where every Redis client of the platform is opened, from ``RedisSettings``: one node, the
master that Redis Sentinel names, or a Redis Cluster.

- **One node** (``REDIS_SENTINELS`` empty): ``REDIS_URL`` names the server.
- **Sentinel** (``REDIS_SENTINELS=host:port,...`` and ``REDIS_SENTINEL_MASTER``): redis-py's
  asyncio ``Sentinel`` asks the sentinels for the master's address each time a connection is
  opened, and a connection that meets a demoted master (``READONLY``) is dropped, so a client
  follows a failover by itself. ``REDIS_URL`` still gives the database, the password and TLS
  (``rediss://``); its host and port are not used. The sentinels themselves are asked with the
  same timeouts (and TLS settings), without the data password.
- **Cluster** (``REDIS_CLUSTER=true``): redis-py's asyncio ``RedisCluster``, seeded by
  ``REDIS_URL`` (any node; its password and TLS serve every node). It routes each command by its
  key's slot and follows ``MOVED`` and a failover by refreshing its slot map. The store's keys
  are laid out so that every script's keys share one hash tag (``store``). The cluster client's
  per-node pools do not block: past ``REDIS_MAX_CONNECTIONS`` to one node a command fails and is
  retried by the cluster client's own retry.

Two kinds of client, each opened once per process (in its start hook) and closed with it:

- ``store_client``: the store's pool (``TaskStore``, shared by the idempotency keys and the
  device leases). A *blocking* pool: a burst of callers waits up to ``REDIS_TIMEOUT_SECONDS``
  for a free connection instead of failing with "Too many connections". redis-py's
  ``SentinelConnectionPool`` does not block, so with Sentinel the pool is
  ``BlockingSentinelConnectionPool``, which has both behaviours. Each command that meets a dead
  pooled connection is retried (``COMMAND_RETRIES``, short backoff) on a new one; during a
  failover that new one fails too, and the caller sees ``StoreUnavailable``. A dead connection is
  one that raises ``RETRIED_ERRORS`` (uvloop's closed-transport ``RuntimeError`` included).
- ``subscriber_client``: a client of its own for a pub/sub subscription (``api.waiters``), no
  command retry (a lost subscription must reach its listener), named in ``CLIENT LIST``. Its
  subscriptions are ``WatchedPubSub``: redis-py pings an idle subscription but never waits for
  the answer, so on a stalled network (nothing comes back, the connection stays open) it would
  wait for ever; a ``WatchedPubSub`` gives up on one that has heard nothing, not even the
  answer to its ping, for ``health_check_seconds + REDIS_TIMEOUT_SECONDS``. On a
  cluster it subscribes on one node, chosen at random from the cluster's current nodes at each
  (re)subscription: a classic ``PUBLISH`` is forwarded to every node of the cluster over the
  cluster bus, so one subscription on any node, master or replica, hears every notice.
  (Sharded pub/sub, ``SPUBLISH``, would deliver only within the channel's slot: the store's
  notices come from scripts on every slot, so it would need a channel, and a subscription, per
  slot.)
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import (
    BlockingConnectionPool,
    ConnectionPool,
    SSLConnection,
    parse_url,
)
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)
from redis.backoff import AbstractBackoff, NoBackoff

from .backoff import Backoff
from .settings import RedisSettings

# redis-py's own retry re-runs one command that met a dead pooled connection, at once.
COMMAND_RETRY = Backoff(initial_seconds=0.05, max_seconds=0.5)
COMMAND_RETRIES = 2
# What a command on a dead pooled connection raises: redis-py's ConnectionError and TimeoutError,
# and, under uvloop (Sanic's loop: Service B's), RuntimeError "unable to perform operation on
# <TCPTransport closed=True>": uvloop refuses a write to a transport that the peer reset while the
# connection sat idle in the pool (asyncio's own loop drops the write; the read then fails). The
# retry closes the connection and runs the command again on a new one.
RETRIED_ERRORS = (aioredis.ConnectionError, aioredis.TimeoutError, RuntimeError)
HEALTH_CHECK_SECONDS = 30  # an idle pooled connection is pinged before use after this long


class WatchedPubSub(PubSub):
    """A subscription that notices a dead connection (see the module docstring).

    Every successful read moves the connection's ``next_health_check`` to ``health_check_interval``
    after it, and the first read past that time sends a PING; a read that returns nothing more
    than ``socket_timeout`` after it (the PING unanswered that long) drops the connection and
    raises ``ConnectionError``, as a lost connection does. So a stalled subscription is given up
    at most ``health_check_interval + socket_timeout`` (plus one read's wait) after the last
    thing it heard. Without a health check interval it behaves as redis-py's ``PubSub``.
    """

    async def parse_response(self, block: bool = True, timeout: float = 0) -> Any:
        response = await super().parse_response(block=block, timeout=timeout)
        connection = self.connection
        if response is None and connection is not None and connection.health_check_interval:
            silent = asyncio.get_running_loop().time() - connection.next_health_check
            if silent > (connection.socket_timeout or 0):
                await connection.disconnect(nowait=True)
                raise aioredis.ConnectionError(
                    f"the subscription heard nothing, not even its health check, for "
                    f"{silent + connection.health_check_interval:.1f}s")
        return response


class RedisBackoff(AbstractBackoff):
    """The platform's ``Backoff`` in redis-py's interface, for its per-command retry."""

    def __init__(self, policy: Backoff) -> None:
        self._policy = policy

    def compute(self, failures: int) -> float:
        return self._policy.delay(failures)


class BlockingSentinelConnectionPool(SentinelConnectionPool, BlockingConnectionPool):
    """A Sentinel-managed pool that blocks when all its connections are in use.

    ``SentinelConnectionPool`` supplies the master's address (and drops idle connections when
    it changed); ``BlockingConnectionPool`` supplies ``get_connection``/``release``, which wait
    up to ``timeout`` seconds for a free connection. The MRO runs both constructors:
    ``SentinelConnectionPool.__init__`` passes ``max_connections`` and ``timeout`` on to
    ``BlockingConnectionPool.__init__``.
    """


@dataclass(slots=True)
class RedisClient:
    """An opened client, and the sentinels' clients behind it (None on one node), closed
    together. On a cluster, ``redis`` is a ``RedisCluster`` (the same command API, typed as
    ``Redis`` for its callers) and ``cluster`` is it too."""

    redis: aioredis.Redis
    sentinel: Sentinel | None = None
    cluster: RedisCluster | None = None
    # Cluster subscriptions: the options of the one-node client ``pubsub`` opens, and it.
    node_options: dict[str, Any] = field(default_factory=dict)
    _node: aioredis.Redis | None = None

    async def pubsub(self) -> PubSub:
        """A pub/sub on this client's server; on a cluster, on a node chosen afresh (see the
        module docstring), the previous one's client closed."""
        if self.cluster is None:
            return WatchedPubSub(self.redis.connection_pool, ignore_subscribe_messages=True)
        await self._close_node()
        await self.cluster.initialize()
        # A fresh slot map, so a node that died is no longer chosen once the cluster knows.
        await self.cluster.nodes_manager.initialize()
        node = random.choice(self.cluster.get_nodes())
        self._node = aioredis.Redis.from_pool(
            ConnectionPool(host=node.host, port=node.port, **self.node_options))
        return WatchedPubSub(self._node.connection_pool, ignore_subscribe_messages=True)

    async def _close_node(self) -> None:
        node, self._node = self._node, None
        if node is not None:
            await node.aclose()

    async def aclose(self) -> None:
        try:
            await self._close_node()
            await self.redis.aclose()
        finally:
            if self.sentinel is not None:
                await self.sentinel.aclose()


def store_client(settings: RedisSettings) -> RedisClient:
    """The store's pooled client (see the module docstring)."""
    options: dict[str, Any] = {
        "decode_responses": True,
        "max_connections": settings.max_connections,
        "timeout": settings.socket_timeout_seconds,  # the wait for a free pooled connection
        "socket_timeout": settings.socket_timeout_seconds,
        "socket_connect_timeout": settings.socket_timeout_seconds,
        "health_check_interval": HEALTH_CHECK_SECONDS,
        "retry": Retry(RedisBackoff(COMMAND_RETRY), retries=COMMAND_RETRIES,
                       supported_errors=RETRIED_ERRORS),  # type: ignore[arg-type]
    }
    if settings.cluster:
        del options["timeout"]
        return _cluster(settings, options)
    if not settings.sentinels:
        pool = BlockingConnectionPool.from_url(settings.url, **options)
        return RedisClient(aioredis.Redis.from_pool(pool))
    return _master(settings, BlockingSentinelConnectionPool, options)


def subscriber_client(settings: RedisSettings, *, client_name: str,
                      health_check_seconds: int) -> RedisClient:
    """A client for one subscription: its own connection, no command retry."""
    options: dict[str, Any] = {
        "decode_responses": True,
        "client_name": client_name,
        "socket_timeout": settings.socket_timeout_seconds,
        "socket_connect_timeout": settings.socket_timeout_seconds,
        "health_check_interval": health_check_seconds,
        "retry": Retry(NoBackoff(), 0),
    }
    if settings.cluster:
        # The cluster client only finds the nodes; the subscription is on one of them.
        client = _cluster(settings, {**options, "health_check_interval": 0})
        from_url = dict(parse_url(settings.url))
        for address in ("host", "port", "path", "unix_socket_path", "db"):
            from_url.pop(address, None)
        client.node_options = {**from_url, **options}
        return client
    if not settings.sentinels:
        return RedisClient(aioredis.Redis.from_url(settings.url, **options))
    return _master(settings, SentinelConnectionPool, options)


def _cluster(settings: RedisSettings, options: dict[str, Any]) -> RedisClient:
    cluster = RedisCluster.from_url(settings.url, **options)
    # RedisCluster serves the command API the platform uses (scripts with their keys, pipelines
    # split per node, pub/sub), so its callers see it as a ``Redis``.
    return RedisClient(cast(aioredis.Redis, cluster), cluster=cluster)


def _master(settings: RedisSettings, pool_class: type[SentinelConnectionPool],
            options: dict[str, Any]) -> RedisClient:
    """A client of the master Sentinel names, with the URL's database, credentials and TLS."""
    from_url: dict[str, Any] = dict(parse_url(settings.url))
    tls = from_url.pop("connection_class", None) is SSLConnection
    for address in ("host", "port", "path", "unix_socket_path"):
        from_url.pop(address, None)
    tls_options = {key: value for key, value in from_url.items() if key.startswith("ssl_")}
    sentinel_options: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout_seconds,
        "socket_connect_timeout": settings.socket_timeout_seconds,
        **({"ssl": True, **tls_options} if tls else {}),
    }
    sentinel = Sentinel(list(settings.sentinels),  # type: ignore[no-untyped-call]
                        sentinel_kwargs=sentinel_options)
    connection_class = SentinelManagedSSLConnection if tls else SentinelManagedConnection
    client: aioredis.Redis = sentinel.master_for(
        settings.sentinel_master, connection_pool_class=pool_class,
        connection_class=connection_class, **from_url, **options)
    return RedisClient(client, sentinel)
