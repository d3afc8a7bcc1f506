"""Business rules after the decision: a function named by import path.

A post-processor is called once per prediction with the event's features, the model's
scores and the decision, and returns the final decision::

    def never_decline_small(features, scored, decision):
        if decision is False and (features.get("amount") or 0) < 5.0:
            return True  # orders under 5 EUR are never declined
        return decision

configured per model as ``post_processor: mypkg.rules:never_decline_small``. It runs
wherever the model answers (stream, HTTP, files). A rule that raises is a record failure
(the record goes to dead-letter, stage ``post-process``), counted and logged.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from streamserve.errors import ConfigError
from streamserve.records import Features, LabelValue, Scored


class PostProcessor(Protocol):
    def __call__(
        self, features: Features, scored: Scored, decision: LabelValue | None
    ) -> LabelValue | None: ...


def load_post_processor(path: str, key: str) -> PostProcessor:
    """The function at ``pkg.module:function``; ConfigError naming ``key`` otherwise."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigError(key, f"must be an import path 'pkg.module:function', got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(key, f"cannot import {module_name!r}: {exc}") from exc
    target = getattr(module, attribute, None)
    if not callable(target):
        raise ConfigError(key, f"{path!r} is not a function")
    processor: PostProcessor = target
    return processor
