"""The accuracy and calibration scripts in a fresh clone without ../shared."""

import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.parametrize("script", ["accuracy.py", "calibrate.py"])
def test_missing_calibration_data_is_one_line_and_exit_2(script, tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--published", str(tmp_path / "published.yaml")],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("Error: --published: no calibration data at ")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
