"""``plan compare``: says when two plans answer different questions (GPU type, model, training
settings), rounds each row consistently in the table and exactly in JSON, and reads documents of
the wrong shape as a one-line error naming the file and key (issue 12 class 5 and new-user items)."""

import copy
import json
import re

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.cli import main

from strategies import non_finite


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    """Two plan documents of llama3.2-1b: H100 at seq 4096 and A100 at seq 2048."""
    out = tmp_path_factory.mktemp("plans")
    for name, extra in (("a", []), ("b", ["--gpu", "a100-80gb", "--seq-len", "2048"])):
        result = CliRunner().invoke(main, ["--gpus", "16", "llama3.2-1b", "-o", str(out / name), *extra])
        assert result.exit_code == 0, result.output
    return out / "a" / "plan.yaml", out / "b" / "plan.yaml"


def test_compare_says_what_question_differs(plans):
    result = CliRunner().invoke(main, ["compare", *map(str, plans)])
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert "differ in" in first and "cluster.gpu" in first and "training.seq_len" in first
    assert re.search(r"^\*\s+cluster\s+gpu\s+h100-80gb\s+a100-80gb", result.stdout, re.M)
    same = CliRunner().invoke(main, ["compare", str(plans[0]), str(plans[0])])
    assert "different questions" not in same.stdout and "\n*" not in same.stdout


def test_compare_rounds_each_row_alike_and_json_is_exact(plans):
    table = CliRunner().invoke(main, ["compare", *map(str, plans)]).stdout
    a, b = (yaml.safe_load(p.read_text()) for p in plans)
    for line in table.splitlines()[2:-1]:
        cells = line[1:].split()
        numbers = [c for c in cells[2:5] if re.fullmatch(r"-?[\d,]+(\.\d+)?", c)]
        decimals = {len(c.split(".")[1]) if "." in c else 0 for c in numbers}
        assert len(decimals) <= 1, line  # A, B and B - A with the same number of decimals
    rows = json.loads(CliRunner().invoke(main, ["compare", *map(str, plans), "--format", "json"]).stdout)
    total = next(r for r in rows if (r["section"], r["term"]) == ("memory_gib", "total"))
    assert (total["a"], total["b"]) == (a["memory_gib"]["total"], b["memory_gib"]["total"])
    assert next(r for r in rows if r["term"] == "gpu")["differs"] is True


JUNK = st.one_of(
    non_finite,
    st.lists(st.integers(), min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), min_size=1, max_size=2).map(lambda d: [d]),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_documents_with_wrong_types_are_one_line_errors(plans, tmp_path_factory, data):
    doc = yaml.safe_load(plans[0].read_text())
    section = data.draw(st.sampled_from(["parallelism", "memory_gib", "performance", "cluster", "training"]))
    broken = copy.deepcopy(doc)
    if data.draw(st.booleans()):
        term = data.draw(
            st.sampled_from(sorted(k for k, v in doc[section].items() if not isinstance(v, dict)))
        )
        broken[section][term] = data.draw(JUNK)
        key = f"{section}.{term}"
    else:
        broken[section] = data.draw(st.sampled_from([[1, 2], "text", 3.5]))
        key = section
    path = tmp_path_factory.mktemp("broken") / "plan.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = CliRunner().invoke(main, ["compare", str(plans[0]), str(path), "--format", "json"])
    assert "Traceback" not in result.output and result.exit_code == 2, result.output
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert str(path) in result.stderr and f"'{key}'" in result.stderr, result.stderr
