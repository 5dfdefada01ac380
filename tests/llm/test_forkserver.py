"""The run's local model server (llm/local/forkserver.py): a job's worker answers with what
the job would have computed itself, its failures reach the job named, and the server stops
with the process that started it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cbtflow.llm import Client, Endpoint, backends, local
from cbtflow.llm.local import forkserver, remote

CONVERSATIONS = [
    [{"role": "system", "content": "You are a CBT therapist."}, {"role": "user", "content": "I cannot sleep."}],
    [{"role": "system", "content": "You are a CBT therapist."}, {"role": "user", "content": "Work scares me."}],
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server as the workflow's onstart starts it, with this test process as its parent."""
    log_path = tmp_path_factory.mktemp("server") / "local_server.log"
    environment, process = forkserver.start(log_path)
    yield environment, process, log_path
    forkserver.stop(process, environment[forkserver.ENV_ADDRESS])


@pytest.fixture
def in_server_env(server, monkeypatch):
    environment, _, _ = server
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return server


def test_a_worker_answers_exactly_as_the_job_itself_would(in_server_env, embedded_model, tmp_path):
    import torch

    torch.set_num_threads(1)
    endpoint = Endpoint(f"local/{embedded_model}")
    log_path = tmp_path / "job.log"
    log_path.write_text("")
    worker = remote.connect(threads=1, log_path=str(log_path))
    assert worker is not None and worker.pid != os.getpid()
    for sampling, seed in (({"temperature": 0.0, "max_tokens": 16}, 1), ({"temperature": 0.7, "max_tokens": 16}, 5)):
        there = worker.generate_batch(endpoint, CONVERSATIONS, sampling, seed)
        local.load(endpoint).prefixes.clear()
        here = local.generate_batch(endpoint, CONVERSATIONS, sampling, seed)
        assert [r["text"] for r in there] == [r["text"] for r in here] and all(r["text"] for r in here)
        assert [r["completion_tokens"] for r in there] == [r["completion_tokens"] for r in here]
    digits = [str(d) for d in range(7)]
    there = worker.score_distributions(endpoint, CONVERSATIONS, digits, "Score: ")
    here = local.score_distributions(endpoint, CONVERSATIONS, digits, "Score: ")
    assert [r["probs"] for r in there] == [r["probs"] for r in here]
    # The worker's own lines land in the job's log; when the job hangs up, its peak memory
    # (which the job's benchmark file does not see) is the last of them.
    assert "forked from the run's local model server" in log_path.read_text()
    assert f"loaded {embedded_model}" in log_path.read_text()
    worker.conn.close()
    deadline = time.monotonic() + 10
    while "done: peak RSS" not in log_path.read_text():
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.05)
    peak = re.search(rf"model worker {worker.pid} done: peak RSS (\d+) MB", log_path.read_text())
    assert peak and int(peak.group(1)) > 100, "a worker holding a 135M model"


def test_the_backend_goes_to_the_server_and_the_client_keeps_usage_and_cache(
    in_server_env, embedded_model, tmp_path, monkeypatch
):
    monkeypatch.setattr(backends, "_LOADED", {})  # a backend built in this job, as a rule script's is
    client = Client(cache_dir=tmp_path / "cache")
    endpoint = Endpoint(f"local/{embedded_model}")
    sampling = {"temperature": 0.0, "max_tokens": 8}
    first = client.chat_batch(endpoint, CONVERSATIONS, sampling, [1, 2])
    assert isinstance(backends.get("transformers").local, remote.Worker), "a job in a server's run uses a worker"
    again = client.chat_batch(endpoint, CONVERSATIONS, sampling, [1, 2])
    assert all(r["text"] for r in first) and [r["text"] for r in again] == [r["text"] for r in first]
    assert client.usage.totals()["calls"] == 2 and client.usage.totals()["cache_hits"] == 2


def test_a_failure_in_the_worker_reaches_the_job_with_its_traceback(in_server_env, tmp_path):
    worker = remote.connect(threads=1)
    with pytest.raises(remote.WorkerFailed, match="(?s)does-not-exist.*in the local model worker"):
        worker.generate_batch(Endpoint(f"local/{tmp_path / 'does-not-exist'}"), CONVERSATIONS, {"max_tokens": 4}, 1)
    os.kill(worker.pid, 9)
    time.sleep(0.5)
    with pytest.raises(remote.WorkerFailed, match="died during a generate call"):
        worker.generate_batch(Endpoint(f"local/{tmp_path}"), CONVERSATIONS, {"max_tokens": 4}, 1)


def test_without_a_server_a_job_runs_its_model_itself(monkeypatch):
    monkeypatch.delenv(forkserver.ENV_ADDRESS, raising=False)
    assert remote.connect() is None
    monkeypatch.setenv(forkserver.ENV_ADDRESS, "/nonexistent/cbtflow.sock")
    monkeypatch.setenv(forkserver.ENV_KEY, "00")
    monkeypatch.setattr(remote, "READY_WAIT_SECONDS", 0.2)
    assert remote.connect() is None, "a server that never became ready is skipped, with a warning"


def test_a_server_that_died_while_starting_is_skipped_at_once(tmp_path, monkeypatch):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    address = tmp_path / "local.sock"
    Path(f"{address}{forkserver.PID_SUFFIX}").write_text(str(dead.pid))
    monkeypatch.setenv(forkserver.ENV_ADDRESS, str(address))
    monkeypatch.setenv(forkserver.ENV_KEY, "00")
    start = time.monotonic()
    assert remote.connect() is None
    assert time.monotonic() - start < 5, "no job waits out READY_WAIT_SECONDS for a dead server"


def test_a_wrong_key_is_refused_and_the_server_keeps_serving(in_server_env, monkeypatch):
    key = os.environ[forkserver.ENV_KEY]
    monkeypatch.setenv(forkserver.ENV_KEY, "11" * 16)
    assert remote.connect() is None
    monkeypatch.setenv(forkserver.ENV_KEY, key)
    assert remote.connect() is not None


def test_the_server_stops_when_the_process_that_started_it_is_gone(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    environment, process = forkserver.start(tmp_path / "server.log", parent=parent.pid)
    address = Path(environment[forkserver.ENV_ADDRESS])
    try:
        deadline = time.monotonic() + 60
        while not Path(f"{address}{forkserver.READY_SUFFIX}").exists():
            assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.2)
        parent.kill()
        parent.wait()
        assert process.wait(timeout=20) == 0
        assert not address.parent.exists(), "its socket directory is removed"
    finally:
        forkserver.stop(process, str(address))


def test_a_worker_runs_a_named_library_function_for_its_job(in_server_env):
    """How a finetune job trains in its worker: a cbtflow function by name, nothing else."""
    from cbtflow.seeds import derive_seed

    worker = remote.connect(threads=1)
    assert worker.call("cbtflow.seeds:derive_seed", seed=3, stream="course.memory") == derive_seed(3, "course.memory")
    with pytest.raises(remote.WorkerFailed, match="cbtflow's own functions only"):
        worker.call("os:getcwd")


def test_a_killed_jobs_worker_stops_at_once(in_server_env):
    """kill -9 of a job must not leave its worker computing (or a finetune worker writing)."""
    job = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from cbtflow.llm.local import remote; w = remote.connect(threads=1); "
            "print(w.pid, flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    worker = int(job.stdout.readline())
    os.kill(worker, 0)  # alive while its job is
    job.kill()
    job.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    pytest.fail(f"worker {worker} outlived its killed job")
