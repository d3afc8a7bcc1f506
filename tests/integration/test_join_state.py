"""JoinState against a real Redis (the session's, see tests/conftest.py): exactly one side
of a pair emits, whatever the order and however often either is replayed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from streamserve.redis.join_state import EventSide, JoinState, LabelSide


@pytest.fixture
def client(redis_client: redis.Redis) -> redis.Redis:
    """The session's Redis (see tests/conftest.py)."""
    return redis_client


@pytest.fixture
def state(client: redis.Redis) -> Iterator[JoinState]:
    prefix = f"tjs{uuid.uuid4().hex[:10]}"
    yield JoinState(client, prefix=prefix, window_s=60)
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)


EV = EventSide({"x": 1.0}, 1000)
LB = LabelSide(True, 2000)


def _pending(state: JoinState, client: redis.Redis) -> set[bytes]:
    members: set[bytes] = set()
    for key in state.pending_keys:
        members |= set(client.zrange(key, 0, -1))  # type: ignore[arg-type]
    return members


def test_event_then_label_only_the_label_emits_even_when_both_replay(
    state: JoinState, client: redis.Redis
) -> None:
    assert state.put_many([("a", EV)]) == [None]
    assert _pending(state, client) == {b"e|a"}
    assert state.put_many([("a", LB)]) == [EV]
    assert _pending(state, client) == set()
    # replay of the first side (its batch aborted): it finds the label but must not emit
    assert state.put_many([("a", EV)]) == [None]
    # replay of the emitting side: emits again (its earlier emission was aborted)
    assert state.put_many([("a", LB)]) == [EV]
    assert state.put_many([("a", EV), ("a", EV)]) == [None, None]
    assert _pending(state, client) == set()


def test_label_then_event_only_the_event_emits_even_when_both_replay(
    state: JoinState, client: redis.Redis
) -> None:
    assert state.put_many([("b", LB)]) == [None]
    assert _pending(state, client) == {b"l|b"}
    assert state.put_many([("b", EV)]) == [LB]
    assert state.put_many([("b", LB)]) == [None]
    assert state.put_many([("b", EV)]) == [LB]
    assert _pending(state, client) == set()


def test_the_exactly_once_duplicate_scenario_emits_once(
    state: JoinState, client: redis.Redis
) -> None:
    # A stored, its transaction aborts; B (another replica) finds A and emits (committed);
    # A is replayed and finds B: before the fix this emitted a second example.
    emitted: list[object] = []
    emitted += [o for o in state.put_many([("c", EV)]) if o is not None]
    emitted += [o for o in state.put_many([("c", LB)]) if o is not None]
    emitted += [o for o in state.put_many([("c", EV)]) if o is not None]
    assert emitted == [EV]


def test_both_sides_in_one_batch_emit_once_from_the_second(
    state: JoinState, client: redis.Redis
) -> None:
    assert state.put_many([("d", LB), ("d", EV)]) == [None, LB]
    assert state.put_many([("d", EV), ("d", LB)]) == [LB, None]
    assert _pending(state, client) == set()


def test_a_replayed_first_side_without_its_pair_stays_pending(
    state: JoinState, client: redis.Redis
) -> None:
    assert state.put_many([("e", EV)]) == [None]
    assert state.put_many([("e", EV)]) == [None]
    assert _pending(state, client) == {b"e|e"}
    assert state.sweep(now_ms=2**62) == {"event": 1, "label": 0}
    assert state.sweep(now_ms=2**62) == {"event": 0, "label": 0}


def test_the_emitting_side_keeps_its_flag_but_takes_the_new_value(
    state: JoinState, client: redis.Redis
) -> None:
    state.put_many([("f", LB)])
    state.put_many([("f", EV)])
    newer = EventSide({"x": 2.0}, 1000)
    # the event was second: a re-sent event emits with the label
    assert state.put_many([("f", newer)]) == [LB]
    # the label was first: a corrected label does not emit
    assert state.put_many([("f", LabelSide(False, 3000))]) == [None]
    # the next replay of the event carries the corrected label
    assert state.put_many([("f", newer)]) == [LabelSide(False, 3000)]


def test_many_ids_in_one_batch_are_independent(state: JoinState, client: redis.Redis) -> None:
    ids = [f"g{i}" for i in range(50)]
    assert state.put_many([(i, EV) for i in ids]) == [None] * 50
    assert state.put_many([(i, LB) for i in ids[::2]]) == [EV] * 25
    assert state.put_many([(i, EV) for i in ids]) == [None] * 50
    assert _pending(state, client) == {f"e|{i}".encode() for i in ids[1::2]}


def test_keys_of_one_id_share_a_hash_tag(state: JoinState, client: redis.Redis) -> None:
    state.put_many([("h", EV), ("h", LB)])
    keys = sorted(k.decode() for k in client.scan_iter(match=f"{state._prefix}:join:*h*"))
    assert keys == [f"{state._prefix}:join:{{h}}:e", f"{state._prefix}:join:{{h}}:l"]
    assert client.get(keys[0]) == b'0{"f":{"x":1.0},"ts":1000}'
    assert client.get(keys[1]) == b'1{"l":true,"ts":2000}'


def test_emitters_names_the_side_stored_as_emitting(state: JoinState) -> None:
    state.put_many([("i", EV), ("j", LB), ("k", EV)])
    state.put_many([("i", LB), ("j", EV), ("i", EV), ("j", LB)])
    assert state.emitters(["i", "j", "k", "never"]) == [{"label"}, {"event"}, set(), set()]
