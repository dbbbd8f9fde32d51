"""A small cache for the evaluator's per-layer functions.

The step model and the memory model evaluate one layer of a configuration for each pipeline stage
they look at (first, second and last: ``evaluate.loaded_stages``), and the memory model asks for a
layer's activations under the configuration's own recompute mode more than once per stage. Each
time the arguments are the very same objects, so the repeats are served from here; tabulating the
search space (``planner.space.compile_terms``) evaluates every row this way, and this is where its
time went.

Calls are matched on the identity of their arguments, not on equality: the specs are frozen
dataclasses (``HardwareSpec`` holds dicts and cannot be hashed), and comparing them field by field
would cost as much as the layer itself. Each entry keeps its arguments alive, so while it lives no
other object can take their identities; an equal but distinct argument is simply a miss. Results
are shared between callers, who only read them.
"""

from collections import OrderedDict
from collections.abc import Callable
from functools import wraps
from typing import Any

RECENT_CALLS = 16  # a configuration's repeats come back to back: a few entries catch them all


def recent_calls(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (a pure function of positional arguments that are never mutated) remembering its
    last ``RECENT_CALLS`` results."""
    cache: OrderedDict[tuple[int, ...], tuple[tuple[Any, ...], Any]] = OrderedDict()

    @wraps(fn)
    def cached(*args: Any) -> Any:
        key = tuple(map(id, args))
        hit = cache.get(key)
        if hit is not None:  # the entry holds its arguments: no other live object has their ids
            return hit[1]
        value = fn(*args)
        cache[key] = (args, value)
        if len(cache) > RECENT_CALLS:
            cache.popitem(last=False)
        return value

    return cached
