"""``bentoml build`` packages the service from ``bentofile.yaml`` here: no lock against the public
index (``lock_packages: false``), the policy, synonyms and migrations included.

BentoML asks for ``uv`` even when it does not lock, and pip-installs it into the running
environment when it is missing: ``uv`` is a test extra, and without it this test skips rather than
change the environment."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    importlib.util.find_spec("uv") is None and shutil.which("uv") is None,
    reason="uv is not installed: bentoml build would pip-install it into this environment "
    "(install the test extras, which include uv)",
)
def test_bentoml_build(tmp_path) -> None:
    bentoml = Path(sys.executable).with_name("bentoml")
    result = subprocess.run(
        [str(bentoml), "build", "--output", "tag"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "BENTOML_HOME": str(tmp_path), "BENTOML_DO_NOT_TRACK": "true"},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    built = next(p for p in (tmp_path / "bentos" / "concord").iterdir() if p.is_dir())
    source = built / "src"
    for name in (
        "serving/service.py",
        "policies/catalogue.yaml",
        "ingestion/synonyms.yaml",
        "concord/migrations/versions/0004_api_keys_audit_decisions.py",
    ):
        assert (source / name).is_file(), name
    assert not (source / "simulator").exists() and not (source / "tests").exists()
    assert "bentoml==1.4" in (built / "env" / "python" / "requirements.txt").read_text()
