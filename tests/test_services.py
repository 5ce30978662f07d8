"""The throwaway servers the suite starts: loopback only, fresh, and gone afterwards."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import psycopg
import pytest
import redis

from tests.support.services import postgres_server, redis_server


def _workdirs(prefix: str) -> set[Path]:
    import tempfile

    return set(Path(tempfile.gettempdir()).glob(f"{prefix}*"))


def test_redis_server_is_private_and_removed_after_use() -> None:
    before = _workdirs("amas-test-redis-")
    with redis_server() as url:
        assert urllib.parse.urlsplit(url).hostname == "127.0.0.1"
        with redis.Redis.from_url(url, socket_timeout=2) as client:
            assert client.dbsize() == 0  # a fresh server, not one shared with other runs
            client.set("k", "v")
            assert client.config_get("save") == {"save": ""}
        assert len(_workdirs("amas-test-redis-") - before) == 1
    with pytest.raises(redis.ConnectionError), redis.Redis.from_url(url, socket_timeout=1) as client:
        client.ping()
    assert _workdirs("amas-test-redis-") == before


def test_postgres_server_is_private_and_removed_after_use() -> None:
    before = _workdirs("amas-test-postgres-")
    with postgres_server() as dsn:
        parts = urllib.parse.urlsplit(dsn)
        assert (parts.hostname, parts.path) == ("127.0.0.1", "/test")
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
            assert tables == (0,)
            assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=1)
    assert _workdirs("amas-test-postgres-") == before
