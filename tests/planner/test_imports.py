"""OR-Tools (a quarter of a second to import, more with pandas) is loaded only by a search: the
commands that do not search never import it, and a search does not import pandas. Each case runs
in a fresh interpreter."""

import subprocess
import sys

import pytest

PROBE = """
import sys
from click.testing import CliRunner
from planner.cli import main
result = CliRunner().invoke(main, sys.argv[1:], catch_exceptions=False)
assert result.exit_code == 0, result.output
print(sorted({name.split(".")[0] for name in sys.modules} & {"ortools", "pandas"}))
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["serve", "llama2-7b", "--gpu", "h100-80gb", "--context", "4k", "--batch", "1", "--format", "json"],
        ["--gpus", "8", "--exhaustive", "--format", "json", "llama2-7b"],
        [
            "--gpus",
            "8",
            "--tp",
            "1",
            "--pp",
            "1",
            "--zero",
            "1",
            "--recompute",
            "selective",
            "--mbs",
            "1",
            "--exhaustive",
            "llama2-7b",
        ],
    ],
    ids=["help", "serve", "exhaustive", "pinned-exhaustive"],
)
def test_commands_that_do_not_search_leave_or_tools_unloaded(args):
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_search_loads_it_without_pandas():
    """A search loads OR-Tools but not pandas, which its import would load
    (``solver._deferring_pandas``)."""
    args = ["--gpus", "8", "--top", "3", "--format", "json", "llama2-7b"]
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "['ortools']"


PANDAS_PROBE = """
import sys
import planner.solver
{before}
cp_model = planner.solver.load()
assert ("pandas" in sys.modules) == {loaded}, sorted(sys.modules)
import pandas
model = cp_model.CpModel()
x = model.new_int_var_series("x", pandas.Index(range(3)), 0, 5)
model.add(x.sum() == 7)
solver = cp_model.CpSolver()
assert solver.solve(model) == cp_model.OPTIMAL and sum(solver.values(x)) == 7
print(type(x).__module__.split(".")[0], cp_model.pd.Series is pandas.Series)
"""


@pytest.mark.parametrize(
    ("before", "loaded"), [("", False), ("import pandas", True)], ids=["fresh", "pandas-first"]
)
def test_or_tools_pandas_helpers_still_work(before, loaded):
    """OR-Tools' pandas-indexed helpers, which the planner does not call, still work after ``load``
    in the same process: the real pandas comes in when first used, and where pandas was imported
    before, the plain import is used."""
    probe = PANDAS_PROBE.format(before=before, loaded=loaded)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["pandas", "True"]


def test_a_request_whose_model_states_fit_no_gpu_count_leaves_it_unloaded():
    """Fewer GPUs than hold the model states (``diagnose.min_gpus_for_states``): nothing can fit,
    the presolve proves it without a model, and the diagnosis searches by enumeration."""
    probe = PROBE.replace("assert result.exit_code == 0", "assert result.exit_code == 1")
    args = ["--gpus", "8", "--format", "json", "llama3.1-405b"]
    out = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
