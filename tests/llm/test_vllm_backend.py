"""The vLLM therapist backend: its command line, and the start / route / stop logic around
it, against a stand-in OpenAI-compatible server (vLLM itself needs a GPU: unverified here)."""

import json
import sys
import urllib.request
from pathlib import Path

import pytest
from workspace import ROOT

from cbtflow.config import with_schema_defaults
from cbtflow.llm import Client, Endpoint
from cbtflow.llm.backends import backend_class
from cbtflow.llm.backends import vllm_served as vllm_server
from cbtflow.llm.backends.vllm_served import OpenAIServer, ServerStartError, Vllm, served_name, server_command

serving = Vllm.serving

STUB = ROOT / "tests" / "data" / "openai_stub_server.py"


def vllm_settings(**given):
    """``therapist.vllm`` as a validated config passes it: the schema's defaults filled in."""
    return with_schema_defaults(given, "therapist", "vllm")


@pytest.fixture
def adapter(tmp_path):
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"r": 12, "lora_alpha": 24}))
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    return str(folder)


def test_command_loads_the_adapter_as_a_named_lora_module(adapter):
    endpoint = Endpoint("local/models/llama", adapter=adapter, chat_template="t.jinja", backend="vllm")
    cmd = server_command(endpoint, 8123, vllm_settings(max_model_len=8192, extra_args=["--enforce-eager"]))
    assert Path(cmd[0]).name == "vllm" and cmd[1:3] == ["serve", "models/llama"]
    assert cmd[cmd.index("--port") + 1] == "8123"
    assert cmd[cmd.index("--lora-modules") + 1] == f"{served_name(endpoint)}={adapter}"
    assert served_name(endpoint).startswith("lora-") and cmd[cmd.index("--max-lora-rank") + 1] == "16", (
        "r 12 -> vLLM's next rank"
    )
    assert cmd[cmd.index("--chat-template") + 1] == "t.jinja" and cmd[-1] == "--enforce-eager"
    base = server_command(Endpoint("local/models/llama", backend="vllm"), 8123, vllm_settings())
    assert "--enable-prefix-caching" in cmd and "--enable-prefix-caching" in base, "turns reuse their prefix"
    assert "--enable-lora" not in base and served_name(Endpoint("local/models/llama")) == "base"


def test_served_sessions_route_to_the_lora_module_and_keep_the_local_identity(adapter, tmp_path, monkeypatch):
    monkeypatch.setattr(
        vllm_server,
        "server_command",
        lambda endpoint, port, settings=None: [sys.executable, str(STUB), str(port), "base", served_name(endpoint)],
    )
    endpoint = Endpoint("local/models/llama", adapter=adapter, backend="vllm")
    client = Client(cache_dir=tmp_path / "cache")
    conversations = [[{"role": "user", "content": f"session {i}"}] for i in range(3)]
    with serving(endpoint, tmp_path / "server.log", vllm_settings()) as served:
        assert served.serve_url.startswith("http://127.0.0.1:")
        sampling = {"temperature": 0, "repetition_penalty": 1.1}
        replies = client.chat_batch(served, conversations, sampling, [1, 2, 3])
    assert [r["text"] for r in replies] == [f"served by {served_name(endpoint)} rp=1.1"] * 3
    assert set(client.usage.by_model) == {"local/models/llama"}
    assert served.identity() == {**Endpoint("local/models/llama", adapter=adapter).identity(), "backend": "vllm"}
    assert "127.0.0.1" not in json.dumps(served.identity()), "the port never enters a cache key"
    with pytest.raises(OSError):  # stopped with the block
        urllib.request.urlopen(f"{served.serve_url}/models", timeout=2)
    # The same calls, whatever port a server gets next time, come from the cache.
    again = Client(cache_dir=tmp_path / "cache").chat_batch(endpoint, conversations, sampling, [1, 2, 3])
    assert all(r["cached"] for r in again)


def test_transformers_backend_starts_nothing(tmp_path):
    endpoint = Endpoint("local/models/llama")
    with backend_class("transformers").serving(endpoint, tmp_path / "server.log", {}, None) as served:
        assert served is endpoint and not (tmp_path / "server.log").exists()


def test_a_server_that_dies_fails_with_its_log(tmp_path):
    crash = [sys.executable, "-c", "import sys; print('CUDA out of memory'); sys.exit(3)"]
    with pytest.raises(ServerStartError, match=r"(?s)status 3.*CUDA out of memory"):
        with OpenAIServer(crash, 1, "base", tmp_path / "server.log", startup_timeout=30):
            pass


def test_a_shared_server_per_base_serves_every_job_by_adapter_name(adapter, tmp_path):
    """Jobs of one base attach to its shared server: each loads its adapter by name (once;
    a second load is fine), routes to it, and leaves the server running for the next job."""
    port = vllm_server.free_port()
    with OpenAIServer([sys.executable, str(STUB), str(port), "base"], port, "base", tmp_path / "shared.log") as shared:
        endpoint = Endpoint("local/models/llama", adapter=adapter, backend="vllm")
        client = Client(cache_dir=tmp_path / "cache")
        for job in range(2):
            with serving(endpoint, tmp_path / f"job{job}.log", vllm_settings(), shared_url=shared.url) as served:
                assert served.serve_url == shared.url and served.serve_model == served_name(endpoint)
                reply = client.chat(served, [{"role": "user", "content": f"job {job}"}], {"temperature": 0}, 1)
                assert reply["text"].startswith(f"served by {served_name(endpoint)}")
            assert not (tmp_path / f"job{job}.log").exists(), "no server of its own was started"
        with serving(
            Endpoint("local/models/llama", backend="vllm"), tmp_path / "b.log", vllm_settings(), shared_url=shared.url
        ) as b:
            assert b.serve_model == "base"  # the instruct condition uses the base itself
        urllib.request.urlopen(f"{shared.url}/models", timeout=5)  # still serving
        with pytest.raises(ServerStartError, match="does not answer"):
            with serving(endpoint, tmp_path / "x.log", vllm_settings(), shared_url="http://127.0.0.1:9/v1"):
                pass
