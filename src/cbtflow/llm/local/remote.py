"""A job's end of the run's local model server (``forkserver``): the same two calls as
``cbtflow.llm.local`` (``generate_batch``, ``score_distributions``), answered by a worker
forked for this job, so the job itself never imports torch.

A job outside a server's run (a test, ``cbtflow score``, a cluster job on another node)
finds no address, or none that answers, and runs its model in its own process as before.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import Any

from cbtflow.llm.endpoint import Endpoint
from cbtflow.llm.local.forkserver import ENV_ADDRESS, ENV_KEY, JOB_ENVIRONMENT, PID_SUFFIX, READY_SUFFIX

log = logging.getLogger(__name__)
READY_WAIT_SECONDS = 60.0  # a job that starts before the server has imported its libraries waits


class WorkerFailed(RuntimeError):
    """The forked worker raised, or died; the message carries its traceback or exit."""


class Worker:
    """This job's forked worker: call it as the ``local`` module is called."""

    def __init__(self, conn: Connection, pid: int):
        self.conn, self.pid = conn, pid

    def _call(self, *request: Any) -> Any:
        try:
            self.conn.send(request)
            status, *payload = self.conn.recv()
        except (EOFError, OSError) as err:
            raise WorkerFailed(
                f"the local model worker {self.pid} died during a {request[0]} call ({err!r}); "
                "see the server log logs/local_server.log, or set local_server: false to run models in each job"
            ) from err
        if status == "error":
            message, trace = payload
            raise WorkerFailed(f"{message}\n--- in the local model worker ---\n{trace}")
        return payload[0]

    def generate_batch(
        self, endpoint: Endpoint, conversations: Sequence[Sequence[dict[str, str]]], sampling: dict[str, Any], seed: int
    ) -> list[dict[str, Any]]:
        return self._call("generate", endpoint, [list(c) for c in conversations], dict(sampling), seed)

    def call(self, target: str, **kwargs: Any) -> Any:
        """A library function (``module:function``) run in the worker, for a job that needs
        more than a model's calls: a finetune job trains there."""
        return self._call("call", target, kwargs)

    def score_distributions(
        self,
        endpoint: Endpoint,
        conversations: Sequence[Sequence[dict[str, str]]],
        candidates: Sequence[str],
        assistant_prefix: str = "",
    ) -> list[dict[str, Any]]:
        return self._call("score", endpoint, [list(c) for c in conversations], list(candidates), assistant_prefix)


def _died(address: str) -> bool:
    """Whether the server wrote its pid and that process is gone (it failed while importing)."""
    try:
        os.kill(int(Path(address + PID_SUFFIX).read_text()), 0)
    except (FileNotFoundError, ValueError):
        return False  # not started yet
    except ProcessLookupError:
        return True
    return False


def connect(threads: int | None = None, log_path: str | None = None) -> Worker | None:
    """A worker for this job from the run's server, or None when the job has no server
    (then it runs its model itself). A server that was started but never became ready
    within ``READY_WAIT_SECONDS`` is reported and skipped the same way."""
    address, key = os.environ.get(ENV_ADDRESS), os.environ.get(ENV_KEY)
    if not address or not key:
        return None
    deadline = time.monotonic() + READY_WAIT_SECONDS
    while not Path(address + READY_SUFFIX).exists():
        if time.monotonic() > deadline or _died(address):
            log.warning(
                "the local model server at %s is not ready (logs/local_server.log); this job loads its model itself",
                address,
            )
            return None
        time.sleep(0.2)
    try:
        conn = Client(address, family="AF_UNIX", authkey=bytes.fromhex(key))
        conn.send(
            {
                "pid": os.getpid(),
                "cwd": os.getcwd(),
                "threads": threads or int(os.environ.get("CBTFLOW_THREADS", "1")),
                "log": log_path or os.environ.get("CBTFLOW_JOB_LOG"),
                "environment": {name: os.environ[name] for name in JOB_ENVIRONMENT if name in os.environ},
            }
        )
        status, pid = conn.recv()
    except (OSError, EOFError, AuthenticationError) as err:  # another node's socket, a stopped server, a wrong key
        log.warning("the local model server at %s does not answer (%s); this job loads its model itself", address, err)
        return None
    log.info("local model calls go to worker %d of the run's model server", pid)
    return Worker(conn, pid)
