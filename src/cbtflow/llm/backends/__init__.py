"""Model backends: each is one module in this package that declares what it serves.

A backend declares its name, which endpoints it answers (``serves``), whether its calls are
paid (the client checks the budget before each), whether it runs behind a server the job
starts or shares, and, for a therapist backend, the software environment its simulate jobs
need and what it checks in the config. ``Client``, preflight, config validation and the
rules read those declarations; the backend's own imports (torch, litellm) wait until a call
first needs it, as inspect_ai's providers do: a run that uses only API models never imports
torch, one that uses only local models never imports litellm. ``Client`` (cache, usage,
budget) sits in front of all of them; a backend only answers.

Every module here is imported on first use; an installed package can add its own under the
``cbtflow.backends`` entry point (README: Extending cbtflow).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from cbtflow.llm.endpoint import Endpoint
from cbtflow.registry import Registry

ENTRY_POINT_GROUP = "cbtflow.backends"

Messages = Sequence[dict[str, str]]
OnReply = Callable[[int, dict[str, Any]], None] | None


class Backend:
    """One way of answering calls. Subclass, set the class variables, implement
    ``serves`` and ``generate`` (and ``score`` where token probabilities can be read), and
    decorate the class with ``@register``."""

    name: ClassVar[str]
    order: ClassVar[int] = 50  # the first registered backend, in this order, that serves an endpoint answers it
    paid: ClassVar[bool] = False  # its calls cost money: the budget is checked before each
    server: ClassVar[bool] = False  # answers from a server that a job starts or shares
    therapist: ClassVar[bool] = False  # may be chosen as therapist.backend (runs the local therapist)
    environment: ClassVar[str] = "cpu"  # envs/<name>.yaml for a simulate job whose therapist it runs

    @classmethod
    def serves(cls, endpoint: Endpoint) -> bool:
        raise NotImplementedError

    def generate(
        self,
        endpoint: Endpoint,
        conversations: Sequence[Messages],
        sampling: dict[str, Any],
        seeds: Sequence[int],
        *,
        concurrency: int,
        on_reply: OnReply,
        tolerate_failures: bool,
    ) -> list[dict[str, Any]]:
        raise NotImplementedError

    def score(
        self, endpoint: Endpoint, conversations: Sequence[Messages], candidates: Sequence[str], prefix: str
    ) -> list[dict[str, Any]]:
        raise ValueError(f"{endpoint.model}: token probabilities are only read from in-process local models")

    @classmethod
    def model_problems(cls, role: dict[str, Any]) -> list[str]:
        """What config validation should refuse about a role this backend would answer."""
        return []

    # Therapist backends only.
    @classmethod
    def config_problems(cls, config: dict[str, Any]) -> list[str]:
        """What this backend would refuse only after a job started, named by config field."""
        return []

    @classmethod
    def weights(cls, config: dict[str, Any], base: str) -> str | None:
        """The weights it loads for a base when they differ from the base's own (None)."""
        return None

    @classmethod
    @contextmanager
    def serving(
        cls, endpoint: Endpoint, log_path: str | Path, settings: dict[str, Any], shared_url: str | None
    ) -> Iterator[Endpoint]:
        """The endpoint as the job should call it (a server backend starts or attaches one)."""
        yield endpoint


BACKENDS: Registry[Backend] = Registry(__name__, ENTRY_POINT_GROUP, "backend")
register = BACKENDS.register
discover = BACKENDS.classes
backend_class = BACKENDS.get
_LOADED: dict[str, Backend] = {}


def get(name: str) -> Backend:
    """The backend instance, built (and its heavy imports made) on first use."""
    if name not in _LOADED:
        _LOADED[name] = backend_class(name)()
    return _LOADED[name]


def backend_name(endpoint: Endpoint) -> str:
    """The backend that answers an endpoint: the first, in declared order, that serves it."""
    for name, cls in discover().items():
        if cls.serves(endpoint):
            return name
    raise ValueError(f"no backend serves {endpoint.model!r} (registered: {', '.join(discover())})")


def for_endpoint(endpoint: Endpoint) -> Backend:
    return get(backend_name(endpoint))


def therapist_backends() -> dict[str, type[Backend]]:
    """The backends ``therapist.backend`` may name."""
    return {name: cls for name, cls in discover().items() if cls.therapist}


def batch_seed(seeds: Sequence[int]) -> int:
    """One torch seed for a local batch, derived from the calls' own seeds.

    Per-row seeds cannot be honoured inside one batched ``generate``; the call cache makes
    the first answer to each key the answer, so reruns stay identical.
    """
    return int(hashlib.sha256(",".join(map(str, seeds)).encode()).hexdigest()[:8], 16)
