"""Progress of long commands: said by the library, shown by the CLI on a terminal only."""

import io
from dataclasses import replace

from click.testing import CliRunner

from planner.capacity import sweep
from planner.cli import main
from planner.cli_progress import CLEAR_LINE, TerminalProgress
from planner.hardware import preset
from planner.plan import Request, run
from planner.specs import TrainingSpec


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_sees_each_message_replace_the_last_and_a_clean_line_at_the_end():
    stream = Terminal()
    progress = TerminalProgress(stream)
    progress("planning 1/2")
    progress("planning 2/2")
    progress.done()
    assert stream.getvalue() == f"{CLEAR_LINE}planning 1/2{CLEAR_LINE}planning 2/2{CLEAR_LINE}"


def test_a_pipe_or_a_file_gets_nothing():
    stream = io.StringIO()
    progress = TerminalProgress(stream)
    progress("planning 1/2")
    progress.done()
    assert stream.getvalue() == ""


def test_a_sweep_says_each_point_and_each_count_its_smallest_count_search_tries(llama13b):
    said: list[str] = []
    training = TrainingSpec(seq_len=4096, global_batch_size=512)
    answer = sweep(llama13b, [preset("a100-40gb")], [training], [8, 16], progress=said.append)
    assert said[0] == "planning 1/2: a100-40gb x 8 GPUs, seq 4096"
    assert "planning 2/2: a100-40gb x 16 GPUs, seq 4096" in said
    tried = [m for m in said if m.startswith("smallest GPU count on a100-40gb, seq 4096: trying ")]
    assert tried and tried[-1].endswith(f"trying {answer.min_gpus[0]['gpus']}")


def test_the_diagnosis_says_each_fix_it_tries(llama13b):
    said: list[str] = []
    hardware = replace(preset("h100-80gb"), memory_bytes=8e9)
    req = Request(
        model=llama13b, hardware=hardware, training=TrainingSpec(seq_len=4096, global_batch_size=64), gpus=8
    )
    outcome = run(req, progress=said.append)
    assert outcome.status == "infeasible"
    assert said[0] == "nothing fits; the fewest GPUs that would: trying 16"
    assert "nothing fits; trying CPU offload" in said
    assert f"trying {outcome.fixes['min_gpus_at_this_memory']}" in " ".join(said)


def test_the_commands_print_no_progress_when_stderr_is_not_a_terminal():
    result = CliRunner().invoke(main, ["sweep", "llama2-7b", "--gpus", "8,16", "--format", "json"])
    assert result.exit_code == 0 and result.stderr == ""
    result = CliRunner().invoke(main, ["--gpus", "8", "--mem", "8GB", "--format", "json", "llama2-7b"])
    assert result.exit_code == 1 and result.stderr == ""
