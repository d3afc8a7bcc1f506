"""Every route of the OpenAPI document fuzzed with schemathesis (valid and invalid input):
no answer is a 5xx, and every answer is JSON."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import schemathesis
from schemathesis import GenerationMode

from tests.unit.api_app import ADMIN_TOKEN, PREDICT_TOKEN, MemoryWriter, make_app

EXAMPLES = 60

APP, _, _ = make_app(
    predict_tokens=[PREDICT_TOKEN],
    admin_tokens=[ADMIN_TOKEN],
    writer=MemoryWriter(),
    write_events=True,
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=EXAMPLES,
    database="none",
)

STATUSES: Counter[int] = Counter()
HEADERS = [
    {},
    {"Authorization": f"Bearer {PREDICT_TOKEN}"},
    {"Authorization": f"Bearer {ADMIN_TOKEN}"},
    {"Authorization": "Bearer not-a-token"},
]


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    print(f"\nschemathesis answers by status: {dict(sorted(STATUSES.items()))}")
    assert not [s for s in STATUSES if s >= 500]


@schema.parametrize()
def test_no_5xx_and_json_errors(case: schemathesis.Case) -> None:
    for headers in HEADERS:
        response = case.call(headers=headers)
        STATUSES[response.status_code] += 1
        assert response.status_code < 500, (case.path, response.text)
        assert response.headers["content-type"][0].startswith("application/json")
        if response.status_code >= 400:
            assert isinstance(response.json()["error"], str)
