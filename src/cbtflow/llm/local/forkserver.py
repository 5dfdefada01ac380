"""The run's local model server: torch, transformers and peft imported once, a worker forked
for each job that runs a local model.

Every job that runs a local model used to pay for its own imports of torch, transformers
and peft (about 4.5 s of a 2-core machine's time, more than loading the 135M model itself).
The workflow starts this server once per local run (``onstart`` in workflow/rules/common.smk)
and each job's in-process backend asks it for a worker: a forked copy of the server that
has the libraries imported already, loads the job's model and adapter, and answers that
job's calls with the same code (``local.generate_batch``, ``local.score_distributions``;
a finetune job's ``train.finetune.select_and_train``) and the job's thread count, then
exits with the job (at once, if the job is killed). So what a job gets is exactly what it
would have computed itself: its own process, its own KV states, its own failures; the log
lines the worker writes go to the job's log, and usage and the call cache stay in the job.

Forking is safe here because the server itself never computes: torch's thread pool (and
CUDA) are first started inside a worker, never in the process that forks.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ENV_ADDRESS = "CBTFLOW_LOCAL_SERVER"  # the server's Unix socket, set for the run's jobs
ENV_KEY = "CBTFLOW_LOCAL_SERVER_KEY"  # its authentication key (hex), never written to a file
READY_SUFFIX = ".ready"
PID_SUFFIX = ".pid"  # written first: a job can tell a server still importing from one that died
# What a worker takes from the job that asked for it rather than from the server.
JOB_ENVIRONMENT = ("CUDA_VISIBLE_DEVICES", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def preload() -> None:
    """Everything a worker would otherwise import itself (the cost this server saves):
    generation and judging, and training (trl, datasets) for the finetune jobs, unless
    Unsloth is installed: it must be imported before transformers, so there the finetune
    jobs train in their own processes (scripts/finetune.py)."""
    import peft  # noqa: F401
    import torch
    import transformers  # noqa: F401
    from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache  # noqa: F401

    import cbtflow.llm.local  # noqa: F401

    if importlib.util.find_spec("unsloth") is None:
        import datasets  # noqa: F401
        import trl  # noqa: F401

    torch.set_num_threads(1)  # no thread pool exists before a fork; each worker sets the job's count


def answer(request: tuple[Any, ...]) -> Any:
    """One call of the job, run by the same functions the job would run itself: a local
    model's generation or scores, or a named library function (``module:function``, called
    with keyword arguments), which is how a finetune job trains in its worker."""
    from cbtflow.llm import local

    kind, *args = request
    if kind == "generate":
        return local.generate_batch(*args)
    if kind == "score":
        return local.score_distributions(*args)
    if kind == "call":
        target, kwargs = args
        module, _, function = target.partition(":")
        if not module.startswith("cbtflow."):
            raise ValueError(f"a worker runs cbtflow's own functions only, not {target!r}")
        return getattr(importlib.import_module(module), function)(**kwargs)
    raise ValueError(f"unknown request {kind!r}")


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports KiB), pages shared with the server included."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def watch_client(pid: int) -> None:
    """End this worker as soon as its job's process is gone (a job killed mid-call, say
    a finetune job on ``kill -9``, must not leave its worker training or writing)."""
    while True:
        time.sleep(0.1)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(1)


def work(conn: Connection) -> None:
    """A forked worker: take the job's threads, log and environment, then answer its calls
    until it hangs up."""
    import torch

    hello = conn.recv()
    threading.Thread(target=watch_client, args=(int(hello["pid"]),), daemon=True).start()
    os.chdir(hello["cwd"])  # the job's relative paths (models, adapters, logs) mean what they mean there
    os.environ.update(hello.get("environment", {}))
    torch.set_num_threads(max(1, int(hello["threads"])))
    if hello.get("log"):
        handler = logging.FileHandler(hello["log"], mode="a")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    log.info("model worker %d forked from the run's local model server for this job", os.getpid())
    conn.send(("ready", os.getpid()))
    while True:
        try:
            request = conn.recv()
        except EOFError:  # the job is done; its benchmark's max_rss does not see this process
            log.info("model worker %d done: peak RSS %.0f MB", os.getpid(), peak_rss_mb())
            return
        try:
            conn.send(("ok", answer(request)))
        except Exception as err:  # the job raises it with the worker's traceback
            conn.send(("error", f"{type(err).__name__}: {err}", traceback.format_exc()))


def watch_parent(parent: int, address: str) -> None:
    """Stop the server when the Snakemake process that started it is gone (killed -9)."""
    while True:
        time.sleep(2.0)
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            shutil.rmtree(Path(address).parent, ignore_errors=True)
            os._exit(0)


def serve(address: str, authkey: bytes, parent: int) -> None:
    preload()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped by the kernel
    Path(address).unlink(missing_ok=True)
    listener = Listener(address, family="AF_UNIX", authkey=authkey)
    threading.Thread(target=watch_parent, args=(parent, address), daemon=True).start()
    Path(address + READY_SUFFIX).write_text(str(os.getpid()))
    log.info("local model server %d ready at %s", os.getpid(), address)
    while True:
        try:
            conn = listener.accept()
        except (OSError, EOFError, AuthenticationError) as err:  # a wrong key, or a client that hung up early
            log.warning("refused a connection: %s", err)
            continue
        if os.fork() == 0:
            listener.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            try:
                work(conn)
            finally:
                os._exit(0)
        conn.close()


def start(log_path: str | Path, parent: int | None = None) -> tuple[dict[str, str], Any]:
    """Start the server in the background; returns the environment the run's jobs need to
    reach it and the process. Nothing waits for it: a job that comes first waits for the
    ready file (``remote.connect``). The socket lives in a private temporary directory (a
    Unix socket's path must stay under 108 bytes, which a project's own path may not)."""
    address = str(Path(tempfile.mkdtemp(prefix="cbtflow-")) / "local.sock")
    key = secrets.token_hex(16)
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "cbtflow.llm.local.forkserver", "--address", address],
            env={**os.environ, ENV_KEY: key, "CBTFLOW_PARENT_PID": str(parent or os.getpid())},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches Snakemake, which stops this server itself
        )
    return {ENV_ADDRESS: address, ENV_KEY: key}, process


def stop(process: Any, address: str | None) -> None:
    """Stop the server (workers of running jobs finish with their jobs)."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    if address:
        shutil.rmtree(Path(address).parent, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    Path(args.address + PID_SUFFIX).write_text(str(os.getpid()))
    serve(args.address, bytes.fromhex(os.environ.pop(ENV_KEY)), int(os.environ.pop("CBTFLOW_PARENT_PID")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
