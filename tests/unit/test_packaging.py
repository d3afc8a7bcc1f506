"""A built wheel carries topics/ (topics.yaml and the Avro schemas) and the console's files
(its page and the libraries it ships, with their licences) as package data, and the
installed package reads its schemas from there, away from the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHECK = """
import os, sys
from pathlib import Path
import streamserve
from streamserve.client import PredictionDeserializer, Prediction
from streamserve.serde import SchemaCatalog, Serde
from streamserve.topics import default_topics_dir
site = Path(sys.argv[1]).resolve()
assert Path(streamserve.__file__).resolve().is_relative_to(site), streamserve.__file__
topics = default_topics_dir()
assert topics.resolve().is_relative_to(site) and not topics.is_symlink(), topics
p = Prediction("e-1", "default", 3, True, {"False": 0.1, "True": 0.9}, 0.9, 1, 2)
value = Serde(SchemaCatalog.from_dir()).prediction_encoder().encode(p)
assert PredictionDeserializer()(value, None) == p
print("ok", sorted(f.name for f in topics.iterdir()))
"""


def test_the_wheel_carries_the_schemas_and_the_installed_package_reads_them(
    tmp_path: Path,
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "streamserve", src / "streamserve", symlinks=True, ignore=ignore)
    shutil.copytree(ROOT / "topics", src / "topics")
    assert (src / "streamserve" / "_topics").is_symlink()
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("streamserve-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        zf.extractall(tmp_path / "site")
    schemas = {p.name for p in (ROOT / "topics").iterdir() if p.suffix in (".avsc", ".yaml")}
    assert {f"streamserve/_topics/{n}" for n in schemas} <= names
    # the console's page and the library it ships, with its licence (nothing fetched at run time)
    static = ROOT / "streamserve" / "console" / "static"
    shipped = {f"streamserve/{p.relative_to(ROOT / 'streamserve').as_posix()}"
               for p in static.rglob("*") if p.is_file()}  # fmt: skip
    assert "streamserve/console/static/vendor/uplot/LICENSE" in shipped
    assert "streamserve/console/static/vendor/uplot/uPlot.iife.min.js" in shipped
    assert shipped <= names, sorted(shipped - names)
    env = {k: v for k, v in os.environ.items() if k != "STREAMSERVE_TOPICS_DIR"}
    env["PYTHONPATH"] = str(tmp_path / "site")
    ran = subprocess.run(
        [sys.executable, "-c", CHECK, str(tmp_path / "site")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "prediction.avsc" in ran.stdout and "topics.yaml" in ran.stdout
