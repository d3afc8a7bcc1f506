"""The Redis client type every part takes: one server or a Redis Cluster.

Apart from :mod:`streamserve.redis.client` (which imports the settings) so that the
snapshot store, the lease and the join state can name it without importing the settings.
"""

from __future__ import annotations

from typing import TypeAlias

import redis
from redis.cluster import RedisCluster

RedisClient: TypeAlias = redis.Redis | RedisCluster
"""Either client: both speak the commands, scripts and pipelines streamserve uses."""
