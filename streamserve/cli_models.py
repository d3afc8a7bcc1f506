"""``streamserve models ...`` (and its alias ``snapshots list|pin|unpin``): parses the
arguments and prints; every operation is :class:`~streamserve.lifecycle.Registry`'s, the
same the API's management routes call.

Listings (``list``, and ``pin``, ``unpin``, ``rollback``, ``alias`` after their change) are
a table on a terminal and JSON otherwise (a pipe, a file), or as ``--json``/``--table``
say. ``pause`` and ``resume`` print the model's listing after the change too. ``show``,
``promote``, ``decide``, ``export`` and ``import`` print JSON.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import redis

from streamserve.console.records import change_result
from streamserve.errors import ConfigError, StreamserveError
from streamserve.lifecycle.files import export_file, import_file
from streamserve.lifecycle.table import render_listing
from streamserve.wiring import Runtime, key_file_codec

Common = Callable[[argparse.ArgumentParser], None]
Answer = dict[str, Any] | None

_ALIAS_NOTE = "`snapshots list|pin|unpin` are aliases of `models list|pin|unpin`"


def add_models_parser(sub: Any, common: Common) -> None:
    """The ``models`` command and its alias ``snapshots`` (list, pin, unpin)."""
    models = sub.add_parser(
        "models",
        help="versions, aliases, pins, rollbacks, the champion, decisions, export, import",
        description="Manage model versions (Redis only; export and import also need the "
        f"signing key). {_ALIAS_NOTE}.",
    )
    msub = models.add_subparsers(dest="models_command", required=True)
    _add_listing_commands(msub, common)
    _add_change_commands(msub, common)
    _add_file_commands(msub, common)
    snaps = sub.add_parser(
        "snapshots",
        help=f"list, pin or unpin versions ({_ALIAS_NOTE})",
        description=f"{_ALIAS_NOTE}; see `streamserve models --help` for the rest.",
    )
    ssub = snaps.add_subparsers(dest="models_command", required=True)
    _add_listing_commands(ssub, common, only_alias=True)


def _parser(sub: Any, name: str, text: str, common: Common) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=text, description=text)
    common(p)
    return p


def _model(p: argparse.ArgumentParser, required: bool = False) -> None:
    if required:
        p.add_argument("--model", required=True, help="a configured model")
    else:
        p.add_argument("--model", default="default", help="a configured model (default: default)")


def _output(p: argparse.ArgumentParser) -> None:
    how = p.add_mutually_exclusive_group()
    how.add_argument("--json", action="store_true", help="JSON (the default off a terminal)")
    how.add_argument("--table", action="store_true", help="a table (the default on a terminal)")


def _add_listing_commands(sub: Any, common: Common, only_alias: bool = False) -> None:
    ls = _parser(sub, "list", "versions of every model (or of --model), newest first", common)
    ls.add_argument("--model", action="append", help="a configured model (repeatable)")
    _output(ls)
    pin = _parser(sub, "pin", "serve a version and keep it while newer ones are written", common)
    _model(pin)
    pin.add_argument("--version", required=True, dest="ref", help="a version, alias or latest")
    _output(pin)
    unpin = _parser(sub, "unpin", "serve the newest version again", common)
    _model(unpin)
    _output(unpin)
    if only_alias:
        return
    show = _parser(sub, "show", "one version (the serving one by default) in full", common)
    _model(show)
    show.add_argument("--version", dest="ref", help="a version, alias, latest or serving")


def _add_change_commands(sub: Any, common: Common) -> None:
    rb = _parser(sub, "rollback", "serve a version now; the learner continues from it", common)
    _model(rb)
    rb.add_argument("--to", required=True, dest="ref", help="a version or alias")
    _output(rb)
    alias = _parser(sub, "alias", "point an alias (champion, any name) at a version", common)
    _model(alias)
    alias.add_argument("--name", required=True, help="letters, digits, '-' or '_'")
    what = alias.add_mutually_exclusive_group(required=True)
    what.add_argument("--version", dest="ref", help="the version (or alias) it points at")
    what.add_argument("--delete", action="store_true", help="remove the alias")
    _output(alias)
    promote = _parser(sub, "promote", "make a model the stream's champion", common)
    _model(promote, required=True)
    decide = _parser(sub, "decide", "set the model's decision (a new decision version)", common)
    _model(decide)
    rule = decide.add_mutually_exclusive_group(required=True)
    rule.add_argument("--threshold", type=float, help="decide true when P(true) >= this")
    rule.add_argument("--costs", help='expected-cost matrix as JSON: {"decided": {"true": c}}')
    rule.add_argument("--clear", action="store_true", help="no decision: the prediction decides")
    pause = _parser(sub, "pause", "stop learning (serving goes on; no new versions)", common)
    pause.add_argument("model", help="a configured model")
    pause.add_argument("--reason", default="", help="why (shown in models list and the alert)")
    _output(pause)
    resume = _parser(sub, "resume", "learn again from the next example on", common)
    resume.add_argument("model", help="a configured model")
    _output(resume)


def _add_file_commands(sub: Any, common: Common) -> None:
    exp = _parser(sub, "export", "write one version to a signed file", common)
    _model(exp)
    exp.add_argument("--version", required=True, dest="ref", help="a version, alias or latest")
    exp.add_argument("file", help="where to write it")
    exp.add_argument(
        "--key-file", help="the export key (first line signs; default: this deployment's key)"
    )
    imp = _parser(sub, "import", "publish an exported file as the next version", common)
    _model(imp)
    imp.add_argument("file", help="a file written by `models export`")
    imp.add_argument(
        "--key-file", help="keys that may have signed the file (default: this deployment's)"
    )


# -- running ------------------------------------------------------------------------------


def run_models(rt: Runtime, args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run one ``models`` command against ``rt`` (Redis only, and the signing key for
    export and import); print its result to ``out`` (stdout by default)."""
    command = _COMMANDS[args.models_command]
    try:
        if args.models_command not in _CHANGES:
            command(rt, args, out or sys.stdout)
            return 0
        outcome, error, answer = "failed", None, None
        try:
            answer = command(rt, args, out or sys.stdout)
            outcome = "ok"
        except (StreamserveError, redis.RedisError) as exc:
            outcome = "failed" if isinstance(exc, redis.RedisError) else "refused"
            error = str(exc)
            raise
        finally:
            action, given = _audited(args)
            rt.audit_log.record(
                who=f"{_user()} (os user)",
                via="cli",
                action=action,
                model=getattr(args, "model", None),
                args=given,
                outcome=outcome,
                error=error,
                result=change_result(answer) if answer else None,
            )
    finally:
        rt.close()
    return 0


# Commands that change something: each is written to the audit log (the console shows it).
_CHANGES = frozenset(
    {"pin", "unpin", "rollback", "alias", "promote", "decide", "import", "pause", "resume"}
)


def _user() -> str:
    """The OS user running the command."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment
        return f"uid {os.getuid()}"


def _audited(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The audit log's action name and arguments of a changing command."""
    command = args.models_command
    given = {k: getattr(args, a) for k, a in _AUDIT_ARGS.get(command, ())}
    if command == "alias" and args.delete:
        return "delete_alias", {"alias": args.name}
    if command == "alias":
        return "set_alias", given
    if command == "decide":
        rule = {k: v for k, v in given.items() if v is not None}
        return ("decide" if rule else "clear_decision"), rule
    return command, {k: str(v) if k == "file" else v for k, v in given.items()}


# Per command, the audit log's argument names and the parsed arguments they come from.
_AUDIT_ARGS: dict[str, tuple[tuple[str, str], ...]] = {
    "pin": (("version", "ref"),),
    "rollback": (("to", "ref"),),
    "alias": (("alias", "name"), ("version", "ref")),
    "decide": (("threshold", "threshold"), ("costs", "costs")),
    "import": (("file", "file"),),
    "pause": (("reason", "reason"),),
}


def _listing(args: argparse.Namespace, out: TextIO, listing: dict[str, Any]) -> None:
    as_table = args.table or (not args.json and out.isatty())
    out.write(render_listing(listing) if as_table else json.dumps(listing, indent=2) + "\n")


def _one(
    rt: Runtime, args: argparse.Namespace, out: TextIO, view: dict[str, Any]
) -> dict[str, Any]:
    _listing(args, out, {"experiment": rt.store.experiment(), "models": [view]})
    return view


def _json(out: TextIO, value: dict[str, Any]) -> dict[str, Any]:
    out.write(json.dumps(value, indent=2) + "\n")
    return value


def _list(rt: Runtime, args: argparse.Namespace, out: TextIO) -> Answer:
    _listing(args, out, rt.lifecycle.listing(args.model))
    return None


def _show(rt: Runtime, args: argparse.Namespace, out: TextIO) -> Answer:
    return _json(out, rt.lifecycle.show(args.model, args.ref))


def _pin(rt: Runtime, args: argparse.Namespace, out: TextIO) -> Answer:
    return _one(rt, args, out, rt.lifecycle.pin(args.model, args.ref))


def _unpin(rt: Runtime, args: argparse.Namespace, out: TextIO) -> Answer:
    return _one(rt, args, out, rt.lifecycle.unpin(args.model))


def _rollback(rt: Runtime, args: argparse.Namespace, out: TextIO) -> Answer:
    return _one(rt, args, out, rt.lifecycle.rollback(args.model, args.ref))


def _alias(rt: Runtime, args: argparse.Namespace, out: TextIO) -> Answer:
    registry = rt.lifecycle
    if args.delete:
        view = registry.delete_alias(args.model, args.name)
    else:
        view = registry.set_alias(args.model, args.name, args.ref)
    return _one(rt, args, out, view)


def _promote(rt: Runtime, args: argparse.Namespace, out: TextIO) -> Answer:
    return _json(out, rt.lifecycle.promote(args.model))


def _decide(rt: Runtime, args: argparse.Namespace, out: TextIO) -> Answer:
    record: dict[str, Any] | None = None
    if args.threshold is not None:
        record = {"threshold": args.threshold}
    elif args.costs is not None:
        try:
            record = {"costs": json.loads(args.costs)}
        except ValueError as exc:
            raise ConfigError("--costs", f"not JSON: {exc}") from exc
    return _json(out, rt.lifecycle.decide(args.model, record))


def _who() -> str:
    """Who paused or resumed, as the learning state names it."""
    return f"cli:{_user()}"


def _pause(rt: Runtime, args: argparse.Namespace, out: TextIO) -> Answer:
    return _one(rt, args, out, rt.lifecycle.pause_learning(args.model, args.reason, _who()))


def _resume(rt: Runtime, args: argparse.Namespace, out: TextIO) -> Answer:
    return _one(rt, args, out, rt.lifecycle.resume_learning(args.model, _who()))


def _export(rt: Runtime, args: argparse.Namespace, out: TextIO) -> Answer:
    signer = key_file_codec(args.key_file) if args.key_file else rt.codec
    return _json(
        out, export_file(rt.lifecycle, rt.codec, args.model, args.ref, Path(args.file), signer)
    )


def _import(rt: Runtime, args: argparse.Namespace, out: TextIO) -> Answer:
    verifier = key_file_codec(args.key_file) if args.key_file else rt.codec
    return _json(out, import_file(rt.lifecycle, rt.codec, args.model, Path(args.file), verifier))


_COMMANDS: dict[str, Callable[[Runtime, argparse.Namespace, TextIO], Answer]] = {
    "list": _list,
    "show": _show,
    "pin": _pin,
    "unpin": _unpin,
    "rollback": _rollback,
    "alias": _alias,
    "promote": _promote,
    "decide": _decide,
    "pause": _pause,
    "resume": _resume,
    "export": _export,
    "import": _import,
}
