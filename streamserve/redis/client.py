"""The Redis client every role shares: one server or a Redis Cluster; credentials (ACL
user, password) and TLS.

``redis.cluster: true``, or a URL whose scheme is ``redis+cluster://`` or
``rediss+cluster://``, builds redis-py's :class:`~redis.cluster.RedisCluster` from the URL's
host as a seed node (the client discovers the others). Every key streamserve writes carries a
hash tag (``{model}`` for a model's keys, ``{event id}`` for the join state), so each Lua
script touches one slot; see the README's Redis Cluster section for the pub/sub caveats.

TLS files are checked when the client is built, so a bad TLS configuration fails at
start with an error naming the setting; the first PING tells a refused login (fatal,
named, the password never shown) from a server that is merely unreachable (the roles
ride that out).
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from streamserve.errors import ConfigError, StreamserveError
from streamserve.redis.types import RedisClient
from streamserve.settings import RedisSettings

logger = logging.getLogger(__name__)

_TLS_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")


class RedisAuthError(StreamserveError):
    """Redis refused our credentials (wrong user or password, or a disabled user)."""


class RedisClusterUnreachable(StreamserveError):
    """No node of the Redis Cluster answered when the client was built.

    Unlike a single server, which the roles wait for, the cluster client needs one node
    to learn the cluster's layout before it can be built at all; the process stops and its
    supervisor starts it again."""


def tls_kwargs(r: RedisSettings) -> dict[str, Any]:
    """redis-py keyword arguments for TLS, after checking every file they name."""
    url = plain_url(r.url or "")
    tls = url.startswith("rediss://")
    files = {key: getattr(r, key) for key in _TLS_FILES if getattr(r, key)}
    if not tls:
        if files:
            key = next(iter(files))
            raise ConfigError(f"redis.{key}", "is set, but redis.url does not start with rediss://")
        return {}
    for key, path in files.items():
        if not Path(path).is_file():
            raise ConfigError(f"redis.{key}", f"no such file: {path}")
    if r.ssl_keyfile and not r.ssl_certfile:
        raise ConfigError("redis.ssl_keyfile", "is set without redis.ssl_certfile")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if r.ssl_ca_certs:
        try:
            ctx.load_verify_locations(cafile=r.ssl_ca_certs)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError(
                "redis.ssl_ca_certs", f"cannot load CA certificates from {r.ssl_ca_certs}: {exc}"
            ) from exc
    if r.ssl_certfile:
        try:
            ctx.load_cert_chain(r.ssl_certfile, r.ssl_keyfile)
        except (ssl.SSLError, OSError, ValueError) as exc:
            key = "redis.ssl_keyfile" if r.ssl_keyfile else "redis.ssl_certfile"
            raise ConfigError(
                key,
                f"cannot load the client certificate {r.ssl_certfile} with key "
                f"{r.ssl_keyfile or '(in the certificate file)'}: {exc}",
            ) from exc
    if r.ssl_cert_reqs == "none" and r.ssl_check_hostname:
        raise ConfigError(
            "redis.ssl_check_hostname",
            "must be false when redis.ssl_cert_reqs is none (nothing is verified)",
        )
    kwargs: dict[str, Any] = dict(files)
    kwargs["ssl_cert_reqs"] = r.ssl_cert_reqs
    kwargs["ssl_check_hostname"] = r.ssl_check_hostname
    return kwargs


def is_cluster(r: RedisSettings) -> bool:
    """Whether the settings name a Redis Cluster (``redis.cluster`` or a cluster URL)."""
    return r.cluster or (r.url or "").startswith(CLUSTER_SCHEMES)


def plain_url(url: str) -> str:
    """``url`` with a cluster scheme turned into the redis-py one (``redis+cluster://h``
    -> ``redis://h``); any other URL unchanged."""
    for scheme in CLUSTER_SCHEMES:
        if url.startswith(scheme):
            return scheme.replace("+cluster", "") + url[len(scheme) :]
    return url


def build_client(r: RedisSettings) -> RedisClient:
    if not r.url:
        raise ConfigError("redis.url", "required; pass --redis-url or set STREAMSERVE_REDIS_URL")
    kwargs: dict[str, Any] = {
        "socket_timeout": r.socket_timeout_s,
        "socket_connect_timeout": r.socket_timeout_s,
        "health_check_interval": 30,
    }
    if r.username:
        kwargs["username"] = r.username
    if r.password is not None:
        kwargs["password"] = r.password.get()
    kwargs.update(tls_kwargs(r))
    url = plain_url(r.url)
    if is_cluster(r):
        if url.startswith("unix://"):
            raise ConfigError("redis.url", "a Redis Cluster is reached over TCP, not unix://")
        try:
            return RedisCluster.from_url(url, **kwargs)
        except (RedisClusterException, redis.RedisError) as exc:
            raise RedisClusterUnreachable(
                f"no node of the Redis Cluster at {_where(url)} answered (redis.url): {exc}"
            ) from exc
    return redis.Redis.from_url(url, **kwargs)


def _where(url: str) -> str:
    """The host and port of ``url``, without credentials."""
    rest = url.split("://", 1)[-1]
    return rest.rsplit("@", 1)[-1].split("/", 1)[0]


def check_login(client: RedisClient, r: RedisSettings) -> None:
    """PING once: a refused login or a failed certificate check is fatal and named;
    an unreachable server is only logged (roles retry Redis while it is down)."""
    who = f"user '{r.username}'" if r.username else "the default user"
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        raise RedisAuthError(
            f"Redis refused the login of {who}: {exc} "
            "(check redis.username and redis.password / STREAMSERVE_REDIS_PASSWORD)"
        ) from None
    except redis.ResponseError as exc:
        text = str(exc)
        if text.startswith(("NOAUTH", "WRONGPASS", "NOPERM")):
            raise RedisAuthError(
                f"Redis refused {who}: {text} "
                "(check redis.username and redis.password / STREAMSERVE_REDIS_PASSWORD)"
            ) from None
        raise
    except redis.ConnectionError as exc:
        if "CERTIFICATE_VERIFY_FAILED" in str(exc) or "certificate verify failed" in str(exc):
            raise ConfigError(
                "redis.ssl_ca_certs",
                f"the Redis server's certificate does not verify: {exc}",
            ) from None
        logger.warning("Redis is not reachable at start (%s); roles will retry", exc)
