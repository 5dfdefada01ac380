"""KV reuse across turns (llm/prefix.py): the same greedy turns as encoding every prompt
whole, fewer tokens encoded, and cached prompt tokens counted and priced."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fakes import serve

from cbtflow.dialogue import Party, Session, run_sessions
from cbtflow.llm import Client, Endpoint, local, prefix
from cbtflow.llm.api import prompt_cache_hints
from cbtflow.llm.usage import token_cost

ROOT = Path(__file__).resolve().parents[2]
GREEDY = {"temperature": 0.0, "max_tokens": 24, "repetition_penalty": 1.1, "no_repeat_ngram_size": 4}


def _sessions() -> list[Session]:
    """Three sessions of different lengths: different system prompts, and one whose patient
    says a scripted line at its second reply (so its prompts grow differently)."""
    therapist = "You are a CBT therapist. Keep replies short."
    patients = [
        "You are Ana, 34, anxious about work deadlines.",
        "You are Bo, a retired teacher who sleeps badly since his wife died two years ago and feels alone.",
        "You are Cy, 19, low mood.",
    ]
    sessions = [Session(therapist, p, seed=i) for i, p in enumerate(patients)]
    sessions[1].disclosure = {
        "kind": "test",
        "text": "Honestly I have not left the house in a week.",
        "patient_turn": 2,
    }
    return sessions


def _play(endpoint: Endpoint, reuse: bool) -> tuple[list[list[str]], dict]:
    loaded = local.load(endpoint)
    loaded.prefixes.clear()
    client = Client()
    party = Party(endpoint, GREEDY)
    with loaded.options(reuse_prefixes=reuse):
        sessions = run_sessions(client, _sessions(), party, party, max_turns=5)
    assert loaded.reuse_prefixes is True, "the option is restored after the block"
    return [[t["text"] for t in s.turns] for s in sessions], client.usage.totals()


def test_reusing_each_conversations_state_gives_the_same_greedy_turns(embedded_model):
    # Exact at float32; at bfloat16 and int4 a prompt encoded in two pieces rounds differently.
    endpoint = Endpoint(f"local/{embedded_model}", precision="float32")
    whole, whole_usage = _play(endpoint, False)
    reused, reused_usage = _play(endpoint, True)
    assert whole == reused, "greedy turns must not change when earlier turns' KV states are reused"
    assert sum(map(len, reused)) == 15
    assert whole_usage["cached_prompt_tokens"] == 0
    assert reused_usage["prompt_tokens"] == whole_usage["prompt_tokens"]
    # From the second call on, most of every prompt comes from the stored states.
    assert reused_usage["cached_prompt_tokens"] > 0.6 * reused_usage["prompt_tokens"]
    pool = local.load(endpoint).prefixes
    assert pool is not None and 0 < len(pool.entries) <= 6, "one state per view of each live session at most"


def test_a_template_that_rewrites_earlier_turns_falls_back_to_whole_prompts_and_says_so_once(
    embedded_model, caplog, monkeypatch
):
    mistral = str(ROOT / "tests/data/mistral_v03_chat_template.jinja")
    endpoint = Endpoint(f"local/{embedded_model}", chat_template=mistral)
    conversations = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello."}]]
    with caplog.at_level(logging.WARNING, logger="cbtflow.llm.local"):
        first = local.generate_batch(endpoint, conversations, GREEDY, seed=1)
        local.generate_batch(endpoint, conversations, GREEDY, seed=1)
    warnings = [r.getMessage() for r in caplog.records if "encoded whole" in r.getMessage()]
    assert len(warnings) == 1
    assert local.load(endpoint).prefixes is None and first[0]["cached_prompt_tokens"] == 0 and first[0]["text"]


def test_prefix_stability_of_known_templates(embedded_model):
    tokenizer = local.load_tokenizer(embedded_model)
    assert local.prefix_stable(tokenizer, local.TEMPLATE_PROBE), "ChatML (the embedded model's template)"
    for name, stable in (("llama3_chat_template.jinja", True), ("mistral_v03_chat_template.jinja", False)):
        tokenizer.chat_template = (ROOT / "tests/data" / name).read_text()
        assert local.prefix_stable(tokenizer, local.TEMPLATE_PROBE) is stable, name


def test_the_pool_finds_the_longest_prefix_drops_what_a_state_extends_and_forgets_idle_ones():
    pool = prefix.PrefixPool()
    pool.put([1, 2, 3], ["a"])
    pool.put([1, 2, 9, 9], ["b"])
    assert pool.longest([1, 2, 3, 4]) == (3, pool.entries[0])
    assert pool.longest([1, 2, 9, 9, 5])[0] == 4
    assert pool.longest([7, 1, 2])[1] is None
    pool.put([1, 2, 3, 4, 5], ["c"])  # extends [1, 2, 3]: that state is redundant now
    assert sorted(e.layers[0] for e in pool.entries) == ["b", "c"]
    for _ in range(prefix.MAX_IDLE_CALLS):
        pool.longest([1, 2, 3, 4, 5, 6])  # only "c" keeps being extended
        pool.end_call()
    pool.end_call()
    assert [e.layers[0] for e in pool.entries] == ["c"]
    pool.put([1, 2, 3, 4, 5, 6, 7], ["d"], prompt_tokens=5)  # prompt [1..5], then a reply [6, 7]
    pool.put([8, 9], ["e"], prompt_tokens=2)
    d, e = pool.entries
    pool.retire([(d, 6), (e, 1)])  # d's next turn re-rendered its reply differently; e only shared an opening
    assert pool.entries == [e]


def test_a_roomy_cache_layer_grows_past_its_room_like_concatenation():
    import torch

    rows = [[(torch.randn(1, 2, n, 4), torch.randn(1, 2, n, 4))] for n in (3, 5)]
    cache = prefix.left_padded(rows, length=5, room=1)
    layer = cache.layers[0]
    expected = layer.keys.clone()
    for step in range(3):  # the third step runs out of room and reallocates
        new = torch.randn(2, 2, 1, 4)
        keys, _ = layer.update(new, new)
        expected = torch.cat([expected, new], dim=2)
        assert torch.equal(keys, expected), step
    assert torch.equal(expected[0, :, :2], torch.zeros(2, 2, 4)), "row 0 is left-padded by two positions"
    assert torch.equal(expected[1, :, :5], rows[1][0][0][0])


def test_cached_prompt_tokens_are_read_from_the_provider_priced_and_logged(tmp_path):
    usage = {"prompt_tokens": 1000, "completion_tokens": 10, "total_tokens": 1010}
    usage["prompt_tokens_details"] = {"cached_tokens": 800}
    server, seen = serve([200], usage=usage)
    try:
        endpoint = Endpoint("openai/test-model", api_base=f"http://127.0.0.1:{server.server_port}/v1")
        prices = {"input_per_mtok": 1.0, "cached_input_per_mtok": 0.1, "output_per_mtok": 2.0}
        client = Client(cache_dir=tmp_path, prices_by_model={endpoint.model: prices})
        reply = client.chat(endpoint, [{"role": "user", "content": "hi"}], {"temperature": 0.0}, seed=1)
    finally:
        server.shutdown()
    assert reply["cached_prompt_tokens"] == 800
    assert reply["cost_usd"] == pytest.approx((200 * 1.0 + 800 * 0.1 + 10 * 2.0) / 1e6)
    totals = client.usage.totals()
    assert totals["cached_prompt_tokens"] == 800 and totals["prompt_tokens"] == 1000
    assert "cache_control_injection_points" not in seen[0], "an OpenAI-style provider caches by itself"


def test_without_a_cached_price_cached_tokens_cost_the_full_input_price():
    prices = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}
    assert token_cost(prices, 1000, 10, cached_prompt_tokens=800) == token_cost(prices, 1000, 10)


def test_claude_gets_cache_breakpoints_and_self_caching_providers_none():
    hints = prompt_cache_hints("anthropic/claude-3-5-sonnet-20241022")["cache_control_injection_points"]
    assert {"location": "message", "role": "system"} in hints and {"location": "message", "index": -1} in hints
    assert prompt_cache_hints("bedrock/anthropic.claude-3-5-sonnet") != {}
    for model in ("deepseek/deepseek-chat", "openai/gpt-4o", "gemini/gemini-1.5-pro-002", "bedrock/amazon.nova"):
        assert prompt_cache_hints(model) == {}, model


def test_the_estimate_counts_reusable_prompt_tokens_at_the_cached_price():
    import yaml

    from cbtflow.config import validate_config
    from cbtflow.estimate import format_plan, plan

    config = yaml.safe_load((ROOT / "experiments/open-questions.yaml").read_text())
    validate_config(config)
    rows = {(r["stage"], r["role"]): r for r in plan(config)}
    patient = rows[("simulate", "patient")]
    assert 0 < patient["cached_prompt_tokens"] < patient["prompt_tokens"]
    assert patient["cost_usd_with_prompt_cache"] < patient["cost_usd"], "DeepSeek's cache hits cost a tenth"
    assert "with every reusable prefix read from the provider's prompt cache" in format_plan(list(rows.values()))
    # Items scored one call each re-send their transcript: every call after a transcript's first can be cached.
    mood_post, mood_pre = rows[("simulate", "patient mood post")], rows[("simulate", "patient mood pre")]
    assert mood_post["cached_prompt_tokens"] > mood_pre["cached_prompt_tokens"] > 0
    judges = [r for (stage, _), r in rows.items() if stage == "judge" and r["calls"]]
    assert any(r["cached_prompt_tokens"] > 0 for r in judges)


def test_an_earlier_session_re_sent_as_memory_is_encoded_once_per_session(embedded_model):
    """simulation.memory: transcript re-sends the earlier sessions at every therapist turn;
    from the second turn on, they come from the stored KV state, not a new encoding."""
    endpoint = Endpoint(f"local/{embedded_model}")
    loaded = local.load(endpoint)
    loaded.prefixes.clear()
    earlier = [
        "Welcome back. Last week we looked at how your evenings go.",
        "They are long and I mostly sit with the television on.",
        "Could you keep an activity diary each evening before we meet again?",
        "I can try that, I suppose.",
    ] * 3
    history = [
        {"role": "therapist" if i % 2 == 0 else "patient", "text": text, "from_session": 1}
        for i, text in enumerate(earlier)
    ]
    session = Session("You are a CBT therapist. Keep replies short.", "p", seed=3, history=history)
    client = Client()
    patient = Party(Endpoint("scripted/patient"), GREEDY)
    run_sessions(client, [session], Party(endpoint, GREEDY), patient, max_turns=5)
    therapist = client.usage.by_model[endpoint.model]
    turns = [t for t in session.turns if t["role"] == "therapist"]
    assert len(turns) == 3 and turns[0]["context_messages"] > len(history)
    history_tokens = turns[0]["prompt_tokens"]  # the first prompt is mostly the earlier session
    assert therapist["cached_prompt_tokens"] >= 2 * 0.9 * history_tokens, therapist
