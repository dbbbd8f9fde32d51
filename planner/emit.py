"""Launch files from a plan: Megatron-LM arguments, a torchrun script, a SLURM batch script and a
DeepSpeed config. Pure functions: a plan in, text or dictionaries out; ``planner/io.py`` writes.

What a framework cannot express is never emitted silently: each emitter returns notes, a plan that
one framework cannot run is marked ``expressible: false`` in the plan document with the reasons,
``plan -o`` says why on stderr, and none of that framework's files is written.
Flags and config keys follow Megatron-LM ``megatron/training/arguments.py`` at the commit named in
``tests/fixtures/megatron_arguments.json`` and DeepSpeed 0.19 ``deepspeed/runtime/config.py``.
"""

from dataclasses import dataclass, field
from typing import Any

from planner.layout import ParallelConfig, parallelism_block, summary

# Placeholders the user replaces: data, tokenizer, schedule. Values follow common GPT/Llama
# pre-training recipes (Touvron et al. 2023: AdamW 0.9/0.95, weight decay 0.1, clip 1.0).
DEFAULT_TRAIN_ITERS = 1000
DEFAULT_LR = 3e-4
DEFAULT_MIN_LR = 3e-5
DEFAULT_WARMUP_ITERS = 100
ADAM_BETAS = (0.9, 0.95)
ADAM_EPS = 1e-8
WEIGHT_DECAY = 0.1
GRAD_CLIP = 1.0
INIT_METHOD_STD = 0.02
# Run-time choices the launch scripts expose as variables (defaults only; users set them).
DEFAULT_CHECKPOINT_DIR = "checkpoints"
DEFAULT_SAVE_INTERVAL = 500  # steps; plan --checkpoint-interval STEPS replaces it
DEFAULT_LOG_INTERVAL = 10  # steps between loss/throughput lines
DEFAULT_EVAL_INTERVAL = 500  # steps between validation passes
DEFAULT_EVAL_ITERS = 10  # validation batches per pass


@dataclass(frozen=True, slots=True)
class Emitted:
    """One framework's launch content and what it cannot express."""

    expressible: bool
    notes: list[str] = field(default_factory=list)
    content: Any = None


def format_number(value: float) -> str:
    """A number as argparse reads it back exactly: ``10000``, ``0.1``, ``1e-05``."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """What the launch files are for: the model's name, the cluster and the chosen layout."""

    model_name: str
    """Model name (a user's string: quote it for its context)."""
    gpu_name: str
    """GPU type name (a user's string: quote it for its context)."""
    gpus: int
    """GPUs of the run."""
    gpus_per_node: int
    """GPUs of one node."""
    config: ParallelConfig
    """The chosen layout."""
    grad_accum_steps: int
    """Micro-batches per step on one data-parallel rank."""

    @property
    def layout_comment(self) -> str:
        """The layout on one line, every mesh size named (``tp=2 pp=1 dp=8 cp=1 ...``)."""
        return summary(parallelism_block(self.config, self.grad_accum_steps), "comment")
