"""Solve time of the CP-SAT search and of brute force over the same spaces.

    python benchmarks/search_speed.py

Cases: llama2-13b on 64 GPUs, llama3.1-405b on 16384, a 1T GPT (Narayanan et al. 2021 Table 1:
128 layers, h 25600, 160 heads) on 3072, a 530B GPT (105 layers, h 20480, 128 heads) on 5128; then
llama3.1-405b on 1k, 10k and 100k GPUs to show how time grows with the GPU count. Times are
wall-clock seconds on this machine, best of three; ``compile`` is tabulating the terms (shared by
both methods).
"""

import time

from planner.hardware import preset
from planner.io import load_model
from planner.search import brute_force
from planner.solver import solve
from planner.space import Pins, build_space, capacity_units, compile_terms
from planner.specs import ModelSpec, TrainingSpec


def gpt(name: str, layers: int, hidden: int, heads: int) -> ModelSpec:
    return ModelSpec.from_hf_config(
        {
            "model_type": "gpt2",
            "n_layer": layers,
            "n_embd": hidden,
            "n_head": heads,
            "vocab_size": 51200,
            "n_positions": 2048,
        },
        name,
    )


def best_of(fn, repeats=3):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def run(model: ModelSpec, gpus: int, seq_len: int, global_batch: int, inter_node_tp: bool = False) -> None:
    hardware = preset("a100-80gb" if model.family == "gpt2" else "h100-80gb")
    training = TrainingSpec(seq_len=seq_len, global_batch_size=global_batch)
    pins = Pins(max_tp=gpus) if inter_node_tp else Pins()
    space = build_space(model, training, gpus, pins, hardware.nvlink_domain_gpus)
    t_compile, terms = best_of(lambda: compile_terms(space, model, hardware, training))
    capacity = capacity_units(hardware)
    t_solve, result = best_of(lambda: solve(space, terms, capacity))
    t_brute, brute = best_of(lambda: brute_force(space, terms, capacity))
    same = [c.indices for c in result.candidates] == [c.indices for c in brute]
    best = space.config(*result.candidates[0].indices) if result.candidates else None
    layout = (
        (
            f"tp={best.tp} cp={best.cp} pp={best.pp} vpp={best.vpp} dp={best.dp} zero={int(best.zero_stage)} "
            f"rc={best.recompute.value} mbs={best.micro_batch_size}"
        )
        if best
        else "none fits"
    )
    name = model.name + (" (tp any)" if inter_node_tp else "")
    print(
        f"{name:<22} {gpus:>7} {len(terms.activations) * len(space.zero_stages):>10} "
        f"{t_compile:>9.3f} {t_solve:>9.3f} {t_brute:>9.3f} {t_compile + t_solve:>9.3f} "
        f"{result.status:>8} {'yes' if same else 'NO':>5}  {layout}"
    )


def main() -> None:
    print(
        f"{'model':<22} {'GPUs':>7} {'candidates':>10} {'compile s':>9} {'cp-sat s':>9} {'brute s':>9} "
        f"{'total s':>9} {'status':>8} {'same':>5}  plan"
    )
    llama405 = load_model("llama3.1-405b")
    run(load_model("llama2-13b"), 64, 4096, 1024)
    run(llama405, 16384, 8192, 2048)
    run(llama405, 16384, 8192, 2048, inter_node_tp=True)
    run(gpt("gpt-1t", 128, 25600, 160), 3072, 2048, 3072)
    run(gpt("gpt-530b", 105, 20480, 128), 5128, 2048, 2564)
    run(gpt("gpt-530b", 105, 20480, 128), 5128, 2048, 2564, inter_node_tp=True)
    print("growth with GPU count (llama3.1-405b, seq 8192; global batch a multiple of the GPU count):")
    for gpus, batch in ((1024, 2048), (10240, 20480), (102400, 204800)):
        run(llama405, gpus, 8192, batch)
        run(llama405, gpus, 8192, batch, inter_node_tp=True)


if __name__ == "__main__":
    main()
