"""The peer of the file scoring benchmark: what most users would write with River and
pandas. Reads the file into a pandas frame, scores it with River's ``predict_proba_many``
(the pickled pipeline in FILE_PEER_MODEL), writes the predictions in the same format, and
prints its own timings as JSON (from when the model is loaded).

python bench/jobs/file_peer.py IN OUT   # the format told by IN's suffix (.parquet, .jsonl)
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time

import pandas as pd


def main(src: str, out: str) -> None:
    with open(os.environ["FILE_PEER_MODEL"], "rb") as f:
        model = pickle.load(f)  # imports river
    started = time.perf_counter()  # past start-up: imports and the model loaded
    parquet = src.endswith(".parquet")
    frame = pd.read_parquet(src) if parquet else pd.read_json(src, lines=True)
    read = time.perf_counter()
    features = frame[[c for c in frame.columns if c != "event_id"]]
    proba = model.predict_proba_many(features)
    scored = time.perf_counter()
    p_true = proba[True]
    answers = pd.DataFrame(
        {
            "event_id": frame["event_id"],
            "prediction": p_true >= 0.5,
            "probability_false": proba[False],
            "probability_true": p_true,
        }
    )
    if parquet:
        answers.to_parquet(out, index=False)
    else:
        answers.to_json(out, orient="records", lines=True)
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "rows": len(answers),
                "read_s": read - started,
                "score_s": scored - read,
                "write_s": done - scored,
                "work_s": done - started,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
