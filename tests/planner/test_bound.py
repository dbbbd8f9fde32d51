"""The bounded tabulation (``compile_terms(top=...)``): the pipeline-time floor it skips layouts by
is below every row the evaluator tabulates, and the tables it leaves give the plans of the tables
of every layout (brute force over both)."""

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner import space as space_module
from planner.hardware import preset
from planner.io import load_model
from planner.performance import pipeline_time, pipeline_time_floor
from planner.scaling import choose_units, scale_terms
from planner.search import brute_force
from planner.space import Pins, build_space, capacity_units, compile_terms, search_terms
from planner.specs import Framework, ParallelConfig, Precision, Recompute, TrainingSpec, ZeroStage

from strategies import models, trainings

SPACES = [
    ("llama2-13b", 64, TrainingSpec(seq_len=4096, global_batch_size=1024), Pins(allow_offload=True)),
    ("mixtral-8x7b", 32, TrainingSpec(seq_len=4096, global_batch_size=256), Pins(allow_offload=True)),
    (  # expert TP, both dispatchers, TP overlap, Megatron's MoE overlap where it runs
        "qwen3-30b-a3b",
        64,
        TrainingSpec(
            seq_len=4096, global_batch_size=256, tp_comm_overlap=True, overlap_moe_expert_parallel_comm=True
        ),
        Pins(),
    ),
    ("qwen3-8b", 32, TrainingSpec(seq_len=16384, global_batch_size=64, precision=Precision.FP8), Pins()),
    (  # uneven stages, the block method on every count
        "llama3.1-405b",
        8192,
        TrainingSpec(seq_len=8192, global_batch_size=2048),
        Pins(tp=8, cp=1, pp=16),
    ),
    (
        "llama3-8b",
        16,
        TrainingSpec(seq_len=8192, global_batch_size=128, framework=Framework.DEEPSPEED),
        Pins(sequence_parallel=False, allow_offload=True),
    ),
]
H100 = preset("h100-80gb")


@pytest.mark.parametrize(("name", "gpus", "training", "pins"), SPACES, ids=[s[0] for s in SPACES])
def test_the_floor_is_below_every_row_of_the_whole_tables(name, gpus, training, pins):
    """Every activations row of the whole tables (every recompute choice, offload, micro-batch)
    takes at least its layout's floor at that micro-batch; without recompute or offload on one
    stage, the floor is the row's own time."""
    model = load_model(name)
    space = build_space(model, training, gpus, pins, H100.nvlink_domain_gpus)
    terms = compile_terms(space, model, H100, training)
    assert terms.pipeline_us
    tight = 0
    for p, r, u in terms.pipeline_us:
        config = space.config(p, 0, r, u)
        floor = pipeline_time_floor(model, H100, training, config)
        exact = sum(pipeline_time(model, H100, training, config).values())
        assert floor <= exact * (1 + 1e-12), (config, floor, exact)
        if config.recompute is Recompute.NONE and not config.activation_offload and config.pp == 1:
            assert math.isclose(floor, exact, rel_tol=1e-12)
            tight += 1
    assert tight or all(layout[2] > 1 for layout in space.layouts)


@pytest.mark.parametrize(("name", "gpus", "training", "pins"), SPACES, ids=[s[0] for s in SPACES])
def test_each_layouts_floor_is_below_its_rows_in_table_units(name, gpus, training, pins):
    """``_layout_floor`` (what the tabulation sorts and skips by) is at most every activations row
    of its layout in the tables' integer microseconds, and counts its base rows."""
    model = load_model(name)
    space = build_space(model, training, gpus, pins, H100.nvlink_domain_gpus)
    terms = compile_terms(space, model, H100, training)
    constants = H100.step_constants
    least: dict[int, int] = {}
    for (p, _, _), us in terms.pipeline_us.items():
        least[p] = min(us, least.get(p, us))
    for p, us in least.items():
        floor = space_module._layout_floor(space, model, H100, training, constants, p, slower=False)
        assert floor is not None and floor.pipeline_us <= us
        assert floor.zeros == tuple(sorted({z for q, z in terms.states if q == p}))


def bounded_and_whole(model, training, gpus, hardware, pins, top):
    """The ``top`` best plans of the bounded tables and of every layout's, ranked in the bounded
    tables' unit (as ``plan`` and ``plan --exhaustive`` rank them), and both tables."""
    space = build_space(model, training, gpus, pins, hardware.nvlink_domain_gpus)
    bounded = search_terms(space, model, hardware, replace(training), top=top)
    whole = search_terms(space, model, hardware, replace(training))
    units = choose_units(space, bounded)
    capacity = capacity_units(hardware)
    plans = [
        [(c.indices, c.objective) for c in brute_force(space, scale_terms(t, units), capacity, top)]
        for t in (bounded, whole)
    ]
    return plans, bounded, whole


@settings(max_examples=60, deadline=None)
@given(
    models(),
    trainings(),
    st.sampled_from([1, 4, 8, 16, 64, 256]),
    st.floats(1, 80),
    st.booleans(),
    st.integers(1, 5),
)
def test_bounded_tables_give_the_plans_of_every_layout(model, training, gpus, memory_gib, offload, top):
    hardware = replace(H100, memory_bytes=memory_gib * 2**30)
    (bounded, whole), _, _ = bounded_and_whole(
        model, training, gpus, hardware, Pins(allow_offload=offload), top
    )
    assert bounded == whole


@pytest.mark.parametrize(
    ("name", "gpus", "seq", "batch", "memory_gib", "top"),
    [
        ("mixtral-8x7b", 64, 4096, 256, 80, 5),
        ("qwen3-30b-a3b", 128, 4096, 512, 80, 3),
        ("qwen3-30b-a3b", 32, 8192, 128, 40, 5),
        ("qwen1.5-moe-a2.7b", 64, 4096, 256, 80, 5),
        ("llama3-70b", 64, 8192, 256, 80, 5),
        ("llama3-70b", 64, 8192, 256, 40, 2),
    ],
)
def test_bounded_tables_give_the_plans_of_every_layout_on_real_models(
    name, gpus, seq, batch, memory_gib, top
):
    """And they leave most layouts out: the bound is what makes large spaces fast."""
    hardware = replace(H100, memory_bytes=memory_gib * 2**30)
    training = TrainingSpec(seq_len=seq, global_batch_size=batch)
    (bounded, whole), bounded_terms, whole_terms = bounded_and_whole(
        load_model(name), training, gpus, hardware, Pins(), top
    )
    assert bounded == whole and len(bounded) == top
    assert len(bounded_terms.activations) < len(whole_terms.activations) / 2
    assert {p for p, _, _ in bounded_terms.activations} < {p for p, _, _ in whole_terms.activations}


def test_a_coarser_unit_tabulates_every_layout(monkeypatch):
    """Rounded to a coarser unit, a row left out could tie with one kept: then every layout's rows
    are tabulated, as without the bound."""
    model, training = load_model("llama2-13b"), TrainingSpec(seq_len=4096, global_batch_size=1024)
    space = build_space(model, training, 64, Pins(), H100.nvlink_domain_gpus)
    whole = search_terms(space, model, H100, replace(training))
    assert search_terms(space, model, H100, replace(training), top=1).activations != whole.activations
    monkeypatch.setattr(space_module, "microsecond_units", lambda space, terms: False)
    assert search_terms(space, model, H100, replace(training), top=1).activations == whole.activations


def test_states_only_layouts_keep_their_zero_stages():
    """A layout whose framework runs no ZeRO stage has no candidate and no floor."""
    model, training = load_model("llama2-7b"), TrainingSpec(seq_len=4096, global_batch_size=64)
    pins = Pins(zero_stage=ZeroStage.GRADIENTS, pp=2)
    space = build_space(model, replace(training, framework=Framework.DEEPSPEED), 8, pins, 8)
    floors = [
        space_module._layout_floor(
            space,
            model,
            H100,
            replace(training, framework=Framework.DEEPSPEED),
            H100.step_constants,
            p,
            False,
        )
        for p in range(len(space.layouts))
    ]
    assert floors and all(f is None for f in floors)  # DeepSpeed's pipeline engine: ZeRO-0/1 only


@pytest.mark.parametrize(
    ("name", "gpus", "seq", "pins"),
    [
        ("qwen3-30b-a3b", 512, 8192, Pins()),
        ("llama3.1-405b", 8192, 8192, Pins(tp=8, pp=16)),
        ("bloom-176b", 384, 2048, Pins(pp=12, sequence_parallel=False)),
        ("mixtral-8x7b", 96, 4096, Pins(vpp=2, ep=4, etp=2)),
        ("llama2-7b", 1, 4096, Pins()),
    ],
)
def test_every_layout_passes_the_configuration_checks(name, gpus, seq, pins):
    """The layouts are built without re-running ``ParallelConfig``'s checks (``space._mesh``):
    every one of them, at every micro-batch, passes them."""
    model = load_model(name)
    space = build_space(model, TrainingSpec(seq_len=seq, global_batch_size=gpus * 4), gpus, pins, 8)
    assert space.layouts
    for p in range(len(space.layouts)):
        for u in range(len(space.micro_batches)):
            config = space.config(p, 0, 0, u)
            assert (
                ParallelConfig(**{name: getattr(config, name) for name in ParallelConfig.__slots__}) == config
            )


def test_the_visit_goes_by_the_whole_bound_and_asks_data_parallel_times_lazily():
    """``_bounded`` on made-up layouts: the visit goes by pipeline floor plus least data-parallel
    time (layout 1, fast pipeline but slow gradient reduce, is left out once layout 0 gives the
    plans), and never asks the data-parallel time of a layout whose pipeline floor alone ends the
    visit (layout 2)."""
    pipeline = {0: 50, 1: 10, 2: 500}  # integer microseconds, a single micro-batch row each
    data_parallel = {0: 5, 1: 100, 2: 1}
    asked, tabulated = [], []

    def data_parallel_us(p, z):
        asked.append(p)
        return data_parallel[p] + z

    def layout_tables(p):
        tabulated.append(p)
        rows = space_module._LayoutRows(
            states={(p, z): (1,) for z in range(3)},
            activations={(p, 0, 0): (1,)},
            pipeline_us={(p, 0, 0): pipeline[p]},
        )
        rows.data_parallel_us = {(p, z): data_parallel[p] + z for z in range(3)}
        return rows

    floors = [space_module._Floor(pipeline_us=pipeline[p], zeros=(0, 1, 2), candidates=3) for p in range(3)]
    parts = space_module._bounded(floors, data_parallel_us, layout_tables, capacity=10, top=2)
    assert tabulated == [0]
    assert sorted(set(asked)) == [0, 1]
    assert [(part.candidates, sorted(part.states)) for part in parts] == [
        (None, [(0, 0), (0, 1), (0, 2)]),
        (3, []),
        (3, []),
    ]
