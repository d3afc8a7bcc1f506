"""A hand-written scoring loop: confluent-kafka consume, a decode per record (fastavro for
Avro events, ``json`` for JSON ones), River predict_proba_one (a scaled logistic
regression; for JSON, River's StandardScaler on the numbers and OneHotEncoder on the
strings), fastavro encode, produce."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from _shared import codec_for, job_args, model_for, score, serve


def main() -> None:
    a = job_args()
    codec, model = codec_for(a.format, a.topics_dir), model_for(a.format)

    def handle(msgs: list[Any], produce: Callable[..., None], topic: str) -> None:
        for m in msgs:
            produce(topic, score(codec, model, m.value()), m.key())

    serve(a, handle)


if __name__ == "__main__":
    main()
