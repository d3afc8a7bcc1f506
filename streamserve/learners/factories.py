"""Resolve and call the factories named in config: import paths and keyword arguments,
every failure turned into a :class:`LearnerConfigError` that says what to change."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from streamserve.learners.exceptions import LearnerConfigError


def parameter_names(fn: Callable[..., Any]) -> list[str]:
    """The named parameters of ``fn`` (not ``*args``, ``**kwargs`` or ``spec``)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    return [
        p.name
        for p in signature.parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "spec"
    ]


def call_factory(what: str, fn: Callable[..., Any], params: Mapping[str, Any]) -> Any:
    """``fn(**params)``, every failure turned into an actionable LearnerConfigError."""
    try:
        return fn(**params)
    except TypeError as exc:
        accepted = ", ".join(parameter_names(fn)) or "none"
        raise LearnerConfigError(
            f"learner {what!r}: bad params {dict(params)!r} ({exc}); accepted params: {accepted}"
        ) from exc
    except LearnerConfigError as exc:
        raise LearnerConfigError(f"learner {what!r}: {exc}") from exc
    except Exception as exc:
        raise LearnerConfigError(f"learner {what!r}: building it raised {exc!r}") from exc


def resolve_import(path: str, what: str = "learner") -> Callable[..., Any]:
    """The callable an import path ``pkg.module:attribute`` names."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise LearnerConfigError(
            f"{what} {path!r}: an import path must look like 'pkg.module:factory'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LearnerConfigError(
            f"{what} {path!r}: cannot import module {module_name!r}: {exc}"
        ) from exc
    except Exception as exc:
        raise LearnerConfigError(
            f"{what} {path!r}: importing module {module_name!r} failed: {exc!r}"
        ) from exc
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise LearnerConfigError(
                f"{what} {path!r}: module {module_name!r} has no attribute {attribute!r}"
            )
        target = getattr(target, part)
    if not callable(target):
        raise LearnerConfigError(f"{what} {path!r}: {attribute!r} is not callable")
    return target  # type: ignore[no-any-return]
