"""The same scoring job on Quix Streams (run by the peers' virtualenv)."""

from __future__ import annotations

import time

from _shared import codec_for, job_args, model_for, score
from quixstreams import Application


def main() -> None:
    a = job_args()
    codec, model = codec_for(a.format, a.topics_dir), model_for(a.format)
    app = Application(
        broker_address=a.bootstrap,
        consumer_group=a.group,
        auto_offset_reset="earliest",
        auto_create_topics=False,
        consumer_extra_config={"session.timeout.ms": 6000},
    )
    source = app.topic(a.input, key_deserializer="bytes", value_deserializer="bytes")
    sink = app.topic(a.output, key_serializer="bytes", value_serializer="bytes")
    sdf = app.dataframe(source)
    sdf = sdf.apply(lambda value: score(codec, model, value))
    # Quix gives an output record its input's timestamp; the bench times every variant by
    # its output's CreateTime, so stamp the time of producing, as the other jobs' producers do.
    sdf = sdf.set_timestamp(lambda value, key, timestamp, headers: int(time.time() * 1000))
    sdf.to_topic(sink)
    app.run()


if __name__ == "__main__":
    main()
