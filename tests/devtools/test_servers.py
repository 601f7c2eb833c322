"""The local server wrappers in devtools.servers start, answer, stop and leave nothing behind."""

import socket

import psycopg
import pytest
import redis

from devtools.servers import (
    PostgresServer,
    RedisServer,
    children,
    free_port,
    group_members,
    pid_exists,
)


def test_free_port_is_bindable():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_redis_stop_and_restart_on_same_port(tmp_path):
    server = RedisServer(tmp_path / "redis")
    with server:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert redis.Redis.from_url(server.url).ping()
        first_pid = server.pid

        server.stop()
        assert not server.running
        assert not pid_exists(first_pid)
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(server.url, socket_connect_timeout=0.5).ping()

        server.start()
        assert server.pid != first_pid
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        client.set("k", "v")
        assert client.get("k") == b"v"
        client.close()
        second_pid = server.pid
    assert not server.running
    assert not pid_exists(second_pid)
    server.stop()  # idempotent


def test_postgres_answers_and_stops_cleanly(tmp_path):
    server = PostgresServer(tmp_path / "pg")
    with server:
        assert server.url == f"postgresql://chaosplane@127.0.0.1:{server.port}/chaosplane"
        with psycopg.connect(server.url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
            assert conn.execute("select current_user, current_database()").fetchone() == (
                "chaosplane",
                "chaosplane",
            )
        postmaster = server.pid
        workers = children(postmaster)  # checkpointer, walwriter, ...
        assert workers
    assert not server.running
    assert not pid_exists(postmaster)
    assert not [pid for pid in workers if pid_exists(pid)]
    assert group_members(postmaster) == []
    server.stop()  # idempotent
