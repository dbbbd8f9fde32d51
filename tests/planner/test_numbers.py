"""Every number has a finite, sane range, checked where it is read (issue 12 class 4): YAML
``.nan``/``.inf``/huge integers in model and hardware files, ``1e400GB``/``infk``/``nanT`` on the
command line, sizes that would hang the search, and no NaN or Infinity in any JSON output."""

import json
import math

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.cli import main
from planner.errors import PlannerError
from planner.numbers import RANGES, check_number, json_text

from conftest import EXAMPLES
from strategies import absurd_integers, bad_number_texts, non_finite

LLAMA = yaml.safe_load((EXAMPLES / "llama3-8b.yaml").read_text())
MODEL_INT_KEYS = [k for k, v in LLAMA.items() if isinstance(v, int) and not isinstance(v, bool)]
MODEL_FLOAT_KEYS = [k for k, v in LLAMA.items() if isinstance(v, float)]
HARDWARE = {
    "memory_gb": 80,
    "peak_tflops": 989,
    "hbm_bandwidth_gbps": 3350,
    "intra_node_bandwidth_gbps": 450,
    "inter_node_bandwidth_gbps": 50,
    "gpus_per_node": 8,
}


def one_line_error(result, *fragments: str) -> None:
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@settings(max_examples=40, deadline=None)
@given(key=st.sampled_from(MODEL_INT_KEYS + MODEL_FLOAT_KEYS), value=st.one_of(non_finite, absurd_integers))
def test_model_file_numbers_are_finite_and_sane(tmp_path_factory, key, value):
    path = tmp_path_factory.mktemp("m") / "model.yaml"
    path.write_text(yaml.safe_dump({**LLAMA, key: value}))  # .nan, .inf, 10**40 in YAML
    one_line_error(CliRunner().invoke(main, ["--gpus", "8", str(path)]), "model.yaml", key)


@settings(max_examples=30, deadline=None)
@given(key=st.sampled_from(sorted(HARDWARE)), value=st.one_of(non_finite, absurd_integers))
def test_hardware_file_numbers_are_finite_and_sane(tmp_path_factory, key, value):
    path = tmp_path_factory.mktemp("h") / "gpu.yaml"
    path.write_text(yaml.safe_dump({**HARDWARE, key: value}))
    one_line_error(CliRunner().invoke(main, ["--gpus", "8", "--gpu", str(path), "llama3-8b"]), key)


OPTION_TEXTS = [
    (["--gpus", "8", "--mem", "{}GB", "llama3-8b"], "--mem"),
    (["--gpus", "8", "--reserve", "{}GiB", "llama3-8b"], "--reserve"),
    (["--gpus", "8", "--time-limit", "{}", "llama3-8b"], "--time-limit"),
    (["--gpus", "8", "--moe-capacity-factor", "{}", "mixtral-8x7b"], "--moe-capacity-factor"),
    (["--gpus", "{}", "llama3-8b"], "--gpus"),
    (["--gpus", "8", "--seq-len", "{}", "llama3-8b"], "--seq-len"),
    (["--gpus", "8", "--global-batch", "{}", "llama3-8b"], "--global-batch"),
    (["sweep", "llama3-8b", "--gpus", "8", "--tokens", "{}T"], "--tokens"),
    (["sweep", "llama3-8b", "--gpus", "8", "--price-per-gpu-hour", "{}"], "--price-per-gpu-hour"),
    (["sweep", "llama3-8b", "--gpus", "1..{}x1"], "--gpus"),
    (["serve", "llama3-8b", "--context", "{}k"], "--context"),
    (["serve", "llama3-8b", "--batch", "{}"], "--batch"),
]


@settings(max_examples=60, deadline=None)
@given(case=st.sampled_from(OPTION_TEXTS), text=bad_number_texts)
def test_command_line_numbers_are_finite_and_sane(case, text):
    """Non-finite or absurd numbers: one line naming the option, exit 2, nothing on stdout (click's
    own int parser may refuse the text first: then it names the option too)."""
    args, option = case
    one_line_error(CliRunner().invoke(main, [a.format(text) for a in args]), option)


@pytest.mark.parametrize(
    "args, option",
    [
        (["--gpus", "8", "--seq-len", str(10**18), "llama3-8b"], "--seq-len"),
        (["sweep", "llama3-8b", "--gpus", "1..100000x1"], "--gpus"),
        (["--gpus", str(10**30), "llama3-8b"], "--gpus"),
    ],
)
def test_sizes_that_would_hang_are_refused_with_the_range(args, option):
    result = CliRunner().invoke(main, args)
    one_line_error(result, option)
    assert any(ch.isdigit() for ch in result.stderr.split("got")[0])  # the range is stated


def test_check_number_limits_come_from_the_table():
    assert check_number(8.0, "gpus_per_node") == 8 and isinstance(check_number(8.0, "gpus_per_node"), int)
    for field, limits in RANGES.items():
        with pytest.raises(PlannerError, match=field):
            check_number(limits.high * 2 + 1, field)
        with pytest.raises(PlannerError, match=field):
            check_number(math.nan, field)


def test_json_output_is_strict():
    with pytest.raises(PlannerError, match=r"performance\.mfu"):
        json_text({"performance": {"mfu": math.nan}})
    result = CliRunner().invoke(main, ["--gpus", "8", "llama3.2-1b", "--format", "json"])
    json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"{name} in JSON output"))
