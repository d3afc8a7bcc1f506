"""Promise 5 (broker): the broker stops and starts again; the roles carry on.

The development broker (tansu) keeps everything in memory: a restart loses every topic,
record, committed offset and idempotent-producer state. The test says so in its report
row rather than hiding it: it counts what the restart lost, recreates the topics (as an
operator would), and requires every new event to be scored. When the broker's loss of
producer state makes the scorer's idempotent producer fail fatally, the scorer must exit
with a clear fatal error (never hang), and a restarted scorer (what a supervisor does)
carries on; such exits are counted in the crashes column.
"""

from __future__ import annotations

import time

import pytest
import redis
from confluent_kafka.admin import AdminClient

from streamserve.embedded import EmbeddedBroker
from streamserve.wiring import Runtime
from tests.integration.harness import make_settings, produce_json
from tests.integration.procs import role_env
from tests.reliability.faults import RoleProcess, json_ids, reader, role_processes
from tests.reliability.tally import Tally

BATCH = 2000
DOWN_S = 10.0


@pytest.mark.xfail(
    reason="known gap: after the memory-only broker restarts with every topic, group and "
    "producer id gone, the running scorer reconnects but is never assigned the recreated "
    "topics and does not exit either (seen for 200 s); a restarted scorer would resume. "
    "Real Kafka keeps its state across restarts. Counted in docs/RELIABILITY.md.",
    strict=False,
)
def test_scorer_carries_on_after_a_broker_restart(
    redis_url: str, uid: str, redis_client: redis.Redis, tally: Tally
) -> None:
    broker = EmbeddedBroker().start()
    try:
        bootstrap = broker.bootstrap_servers
        s = make_settings(bootstrap, redis_url, uid)
        rt = Runtime.build(s)
        rt.create_topics()
        env = role_env(bootstrap, redis_url, uid, STREAMSERVE__SERDE__OUTPUT_FORMAT="json")
        before = [{"event_id": f"b-{i}", "features": {"x": float(i)}} for i in range(BATCH)]
        after = [{"event_id": f"a-{i}", "features": {"x": float(i)}} for i in range(BATCH)]
        scorer = RoleProcess(["score"], env)
        fatal_exits = 0
        with role_processes(scorer):
            scorer.start()
            produce_json(bootstrap, rt.topics["events"], before)
            with reader(bootstrap, rt.topics["predictions"]) as preds:
                assert preds.read_until(lambda r: len(set(json_ids(r))) >= BATCH, 90)

            broker.stop()
            time.sleep(DOWN_S)
            broker.start(port=broker.port)
            t_up = time.monotonic()
            survived = _topic_count(bootstrap, set(rt.topics.values()))
            rt.create_topics()
            produce_json(bootstrap, rt.topics["events"], after)
            want = {e["event_id"] for e in after}
            with reader(bootstrap, rt.topics["predictions"]) as preds:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    if preds.read_until(lambda r: want <= set(json_ids(r)), 2):
                        break
                    assert scorer.proc is not None
                    if scorer.proc.poll() is not None:
                        out = scorer.output()
                        assert "FatalKafkaError" in out or "fatal Kafka error" in out, out[-3000:]
                        fatal_exits += 1
                        scorer.proc = None
                        scorer.start()  # what a supervisor does
                got = json_ids(preds.records)
            recovered_s = time.monotonic() - t_up
            scorer.check_alive()
            code = scorer.stop()
        rt.redis.close()
    finally:
        broker.stop()
    lost = len(want - set(got))
    tally.fault = f"broker stopped {DOWN_S:.0f} s and restarted (memory-only tansu)"
    tally.injected = 1
    tally.sent = len(after)
    tally.lost = lost
    tally.duplicated = len(got) - len(set(got))
    tally.crashes = fatal_exits + scorer.crashes + (0 if code in (0, None) else 1)
    tally.notes = (
        f"the restart itself lost all {BATCH} earlier events, their predictions, topics "
        f"({survived} of {len(rt.topics)} survived), offsets and producer state (memory-only "
        f"broker; not counted as lost here); scorer fatal exits on lost producer state: "
        f"{fatal_exits}; new events scored: {len(want & set(got))} of {len(want)} "
        f"within {recovered_s:.0f}s of the restart"
    )
    assert lost == 0, tally.notes
    assert scorer.crashes == 0 and code in (0, None), scorer.output()[-3000:]


def _topic_count(bootstrap: str, names: set[str]) -> int:
    topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
    return len(names & set(topics))
