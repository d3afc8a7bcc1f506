"""The same scoring job on Bytewax, one worker, its Kafka connectors (peers' virtualenv)."""

from __future__ import annotations

import bytewax.operators as op
from _shared import codec_for, job_args, model_for, score
from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage, KafkaSource
from bytewax.dataflow import Dataflow
from bytewax.run import cli_main


def main() -> None:
    a = job_args()
    codec, model = codec_for(a.format, a.topics_dir), model_for(a.format)
    flow = Dataflow("bench")
    source = op.input("in", flow, KafkaSource([a.bootstrap], [a.input], tail=True, batch_size=1000))
    scored = op.map(
        "score", source, lambda m: KafkaSinkMessage(m.key, score(codec, model, m.value))
    )
    op.output("out", scored, KafkaSink([a.bootstrap], a.output))
    cli_main(flow, workers_per_process=1)


if __name__ == "__main__":
    main()
