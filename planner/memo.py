"""A cache for the evaluator's per-layer functions, keyed on what each call actually reads.

Tabulating the search space (``planner.space.compile_terms``) evaluates every row: thousands of
configurations that differ in the pipeline depth, the virtual stages, the split of the layers, the
ZeRO stage. One layer's operation times depend on a few of those fields only (tp, cp, ep, the
micro-batch, ...), and each stage of one configuration asks for the same layer again; this is where
the tabulation's time went.

``by_fields_read`` remembers a function's results per configuration fields it read: the first call
runs the function on a stand-in for the ``ParallelConfig`` that records every attribute the
function (and whatever it calls) reads, and stores the result under the names and values read.
A later call whose configuration has the same values for those names gets that result: a pure
function that reads the same values takes the same branches and reads nothing else, so it would
compute the same thing. Nothing is declared, so a field added to the layout, or a formula that
starts reading one more, is taken into account without touching this module.

The other arguments (the model, hardware and training specs, the step constants, a stage number or
a recompute mode) are matched on identity, not equality: the specs are frozen dataclasses
(``HardwareSpec`` holds dicts and cannot be hashed), and comparing them field by field would cost
as much as the layer itself. Each entry keeps them alive, so while it lives no other object can
take their identities; an equal but distinct argument is simply a miss. Results are shared between
callers, who only read them.
"""

from collections import OrderedDict
from collections.abc import Callable
from functools import wraps
from operator import attrgetter
from typing import Any

RECENT_CONTEXTS = 8  # (model, hardware, training, ...) combinations kept: a command uses one or two


class FieldReads:
    """A read-only stand-in for a configuration that records the names of the attributes read."""

    __slots__ = ("_config", "_names")

    def __init__(self, config: Any) -> None:
        object.__setattr__(self, "_config", config)
        object.__setattr__(self, "_names", {})

    def __getattr__(self, name: str) -> Any:
        self._names[name] = None
        return getattr(self._config, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{name}: a configuration is read-only")

    @property
    def names(self) -> tuple[str, ...]:
        """The attribute names read so far, in first-read order."""
        return tuple(self._names)


def by_fields_read(config_position: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Cache a pure function on the configuration fields it reads (the argument at
    ``config_position``) and on the identity of its other arguments; calls that pass arguments by
    keyword run uncached."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        # ids of the other arguments -> (those arguments, [(names read, their getter, {values: result})])
        contexts: OrderedDict[tuple[int, ...], tuple[tuple[Any, ...], list]] = OrderedDict()
        last: list[Any] = [(), None, None]  # the last call's ids, arguments (kept alive) and result

        @wraps(fn)
        def cached(*args: Any, **kwargs: Any) -> Any:
            if kwargs or len(args) <= config_position:  # keyword calls (tests, rare) are not cached
                return fn(*args, **kwargs)
            ids = tuple(map(id, args))
            if ids == last[0]:  # the same objects again (each stage of one configuration)
                return last[2]
            value = lookup(args, ids[:config_position] + ids[config_position + 1 :])
            last[:] = ids, args, value
            return value

        def lookup(args: tuple[Any, ...], context: tuple[int, ...]) -> Any:
            config = args[config_position]
            entry = contexts.get(context)
            if entry is None:
                entry = contexts[context] = (args[:config_position] + args[config_position + 1 :], [])
                if len(contexts) > RECENT_CONTEXTS:
                    contexts.popitem(last=False)
            read_sets = entry[1]
            for _, getter, by_values in read_sets:
                hit = by_values.get(getter(config), MISSING)
                if hit is not MISSING:
                    return hit
            reads = FieldReads(config)
            value = fn(*args[:config_position], reads, *args[config_position + 1 :])
            names = reads.names
            getter = values_of(names)
            try:
                by_values = next(known for seen, _, known in read_sets if seen == names)
            except StopIteration:
                by_values = {}
                read_sets.append((names, getter, by_values))
            try:
                by_values[getter(config)] = value
            except TypeError:  # an unhashable value read: this result is not kept
                pass
            return value

        return cached

    return wrap


MISSING = object()


def values_of(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """A function from an object to the tuple of its attributes ``names`` (C speed)."""
    if len(names) == 1:
        get_one = attrgetter(names[0])
        return lambda obj: (get_one(obj),)
    return attrgetter(*names) if names else lambda obj: ()
