import pytest

from cbtflow.llm import Endpoint
from cbtflow.llm.endpoint import PROVIDER_KEY_ENV


def test_cache_makes_reruns_free_and_counts_usage(scripted, tmp_path):
    client = scripted(lambda m, s: f"reply {s}", cache_dir=tmp_path)
    ep = Endpoint("local/some/dir")
    msgs = [[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]]
    first = client.chat_batch(ep, msgs, {"temperature": 0.5}, [1, 2])
    assert [r["cached"] for r in first] == [False, False]
    again = scripted(lambda m, s: "SHOULD NOT BE CALLED", cache_dir=tmp_path)
    second = again.chat_batch(ep, msgs + [[{"role": "user", "content": "c"}]], {"temperature": 0.5}, [1, 2, 3])
    assert [r["text"] for r in second[:2]] == ["reply 1", "reply 2"]
    assert len(again.calls) == 1, "only the new conversation is generated"
    assert again.usage.totals()["cache_hits"] == 2 and again.usage.totals()["calls"] == 1


def test_cache_key_depends_on_seed_sampling_and_endpoint(scripted, tmp_path):
    client = scripted(lambda m, s: "x", cache_dir=tmp_path)
    msg = [{"role": "user", "content": "a"}]
    client.chat(Endpoint("local/a"), msg, {"temperature": 0.5}, 1)
    client.chat(Endpoint("local/a"), msg, {"temperature": 0.5}, 2)
    client.chat(Endpoint("local/a"), msg, {"temperature": 0.6}, 1)
    client.chat(Endpoint("local/b"), msg, {"temperature": 0.5}, 1)
    client.chat(Endpoint("local/a"), msg, {"temperature": 0.5}, 1)
    assert len(client.calls) == 4


def test_adapter_changes_identity(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"one")
    a = Endpoint("local/base", adapter=str(adapter)).identity()
    (adapter / "adapter_model.safetensors").write_bytes(b"two")
    b = Endpoint("local/base", adapter=str(adapter)).identity()
    assert a["adapter_sha"] != b["adapter_sha"]
    with pytest.raises(FileNotFoundError, match="finetune"):
        Endpoint("local/base", adapter=str(tmp_path / "missing")).identity()


def test_endpoint_providers_and_key_env():
    assert Endpoint("openrouter/nousresearch/hermes-3-llama-3.1-405b").key_env == PROVIDER_KEY_ENV["openrouter"]
    assert Endpoint("gemini/gemini-1.5-pro-002").provider == "gemini"
    assert Endpoint("openai/x", api_base="http://127.0.0.1:8000/v1").key_env is None
    assert Endpoint("local/dir").is_local and Endpoint("local/dir").key_env is None
    with pytest.raises(ValueError, match="unknown keys"):
        Endpoint.from_spec({"model": "x", "api_key": "secret"})


def test_batched_and_sequential_greedy_generation_agree(embedded_model):
    """Left padding must not change what a session says (greedy decoding). Exact at float32;
    at bfloat16 and int4 a row's rounding depends on the batch it is in (bench/precision.py)."""
    from cbtflow.llm import local

    ep = Endpoint(f"local/{embedded_model}", precision="float32")
    conversations = [
        [{"role": "system", "content": "You are a CBT therapist."}, {"role": "user", "content": "I feel low."}],
        [{"role": "user", "content": "Hello"}],
        [
            {"role": "system", "content": "You are a client in therapy, feeling hopeless after losing your job."},
            {"role": "user", "content": "What brings you here today, and how has your week been?"},
        ],
    ]
    sampling = {"temperature": 0.0, "max_tokens": 16}
    batched = local.generate_batch(ep, conversations, sampling, seed=1)
    alone = [local.generate_batch(ep, [c], sampling, seed=1)[0] for c in conversations]
    assert [r["text"] for r in batched] == [r["text"] for r in alone]
    assert all(r["completion_tokens"] > 0 for r in batched)


def test_cache_cli_stats_and_prune(scripted, tmp_path, capsys):
    import json as _json
    import time

    from cbtflow.cli import main

    client = scripted(lambda m, s: "x", cache_dir=tmp_path)
    client.chat(Endpoint("local/a"), [{"role": "user", "content": "hi"}], {}, 1)
    client.chat(Endpoint("gemini/b"), [{"role": "user", "content": "hi"}], {}, 1)
    assert main(["cache", "stats", "--dir", str(tmp_path)]) == 0
    stats = _json.loads(capsys.readouterr().out)
    assert stats["entries"] == 2 and stats["by_model"] == {"gemini/b": 1, "local/a": 1}
    for path in (tmp_path / "entries").rglob("*.json"):  # age local/a's entry by 40 days
        entry = _json.loads(path.read_text())
        if entry["model"] == "local/a":
            path.write_text(_json.dumps({**entry, "created": time.time() - 40 * 86400}))
    assert main(["cache", "prune", "--dir", str(tmp_path), "--older-than-days", "30"]) == 0
    assert "removed 1" in capsys.readouterr().out
    assert client.cache.stats()["entries"] == 1


def test_budget_stops_paid_calls_across_clients(tmp_path):
    from conftest import paid_provider

    from cbtflow.llm import BudgetExceeded, Client

    def PaidClient(**kwargs):  # noqa: N802 - reads like the class it stands for
        client = Client(**kwargs)
        client.generate = paid_provider(client, cost_usd=0.4)
        return client

    first = PaidClient(cache_dir=tmp_path, budget_usd=1.0)
    for i in range(3):
        first.chat(Endpoint("gemini/x"), [{"role": "user", "content": str(i)}], {}, 1)
    # Another job sharing the cache sees the 1.2 USD already spent and stops before paying.
    second = PaidClient(cache_dir=tmp_path, budget_usd=1.0)
    with pytest.raises(BudgetExceeded, match="max_cost_usd"):
        second.chat(Endpoint("gemini/x"), [{"role": "user", "content": "new"}], {}, 1)
    # What is already paid for is still answered from the cache.
    assert second.chat(Endpoint("gemini/x"), [{"role": "user", "content": "0"}], {}, 1)["cached"] is True
    assert second.cache.total_cost() == pytest.approx(1.2)


@pytest.mark.parametrize("shape", [(1, 1, 64), (4, 1, 64), (16, 64), (3, 7, 64)])
def test_skinny_linear_computes_what_linear_computes(shape):
    """The decode-step matmul layout (W @ x.T for 2-16 rows) changes speed, not results."""
    import torch

    from cbtflow.llm import local

    layer = torch.nn.Linear(64, 96)
    x = torch.randn(*shape)
    expected = layer(x)
    assert local.use_skinny_linear(torch.nn.Sequential(layer)) == 1
    got = layer(x)
    assert got.shape == expected.shape and got.is_contiguous()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_local_replies_say_what_computed_them_in_the_usage_log_and_the_report(embedded_model, tmp_path):
    """`precision: auto` resolves per machine, so each local reply carries the precision and
    device that computed it; the job's usage log counts them per model (cache hits keep the
    label of the call that made them) and the report's usage table shows them per stage."""
    from cbtflow.llm import Client
    from cbtflow.report.inputs import ReportInputs
    from cbtflow.report.sections import usage as usage_section

    ep = Endpoint(f"local/{embedded_model}", precision="float32")
    messages = [[{"role": "user", "content": "Hello"}], [{"role": "user", "content": "I feel low."}]]
    fresh = Client(cache_dir=tmp_path)
    replies = fresh.chat_batch(ep, messages, {"temperature": 0.0, "max_tokens": 4}, [1, 2])
    scored = fresh.score(ep, messages[:1], ["1", "2"])
    assert {r["runs_as"] for r in replies + scored} == {"float32 on cpu"}
    assert fresh.usage.as_dict("simulate", {})["runs_as"] == {ep.model: {"float32 on cpu": 3}}
    again = Client(cache_dir=tmp_path)
    again.chat_batch(ep, messages, {"temperature": 0.0, "max_tokens": 4}, [1, 2])
    assert again.usage.totals()["cache_hits"] == 2 and again.usage.runs_as == {ep.model: {"float32 on cpu": 2}}
    logs = [c.usage.as_dict(stage, {}) for c, stage in ((fresh, "simulate"), (again, "simulate"), (Client(), "judge"))]
    by_stage = usage_section.usage_by_stage(logs)
    assert by_stage["simulate"]["runs_as"] == {"float32 on cpu": 5} and by_stage["judge"]["runs_as"] == {}
    table = "\n".join(usage_section.section(ReportInputs({}, "j", {}, by_stage, {}, "")))
    assert "| float32 on cpu (5) |" in table and "| – |" in table
