"""The peer of the HTTP API benchmark: the FastAPI app most users would write. It loads
the same River model (a pickle of the served snapshot's estimator, path in
HTTP_PEER_MODEL) and calls ``predict_proba_one`` per instance.

uvicorn bench.jobs.http_peer:app        # handler declared ``def`` (run in a thread pool)
uvicorn bench.jobs.http_peer:app_async  # handler declared ``async def``
"""

from __future__ import annotations

import os
import pickle
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

with open(os.environ["HTTP_PEER_MODEL"], "rb") as f:
    model = pickle.load(f)


class PredictRequest(BaseModel):
    instances: list[dict[str, float]]


def _predict(req: PredictRequest) -> dict[str, Any]:
    out = []
    for x in req.instances:
        proba = model.predict_proba_one(x)
        p_true = proba.get(True, 0.0)
        out.append(
            {
                "prediction": p_true >= 0.5,
                "probabilities": {"false": proba.get(False, 0.0), "true": p_true},
                "score": p_true,
            }
        )
    return {"predictions": out}


app = FastAPI()
app_async = FastAPI()


@app.post("/v1/models/{name}:predict")
def predict(name: str, req: PredictRequest) -> dict[str, Any]:
    return _predict(req)


@app_async.post("/v1/models/{name}:predict")
async def predict_async(name: str, req: PredictRequest) -> dict[str, Any]:
    return _predict(req)
