"""The API path for real: litellm's openai provider against an HTTP server on loopback."""

import contextlib

import pytest
from fakes import serve

from cbtflow.llm import Client, Endpoint
from cbtflow.llm.api import APICallError


@contextlib.contextmanager
def loopback(statuses, delay=0.0):
    """An endpoint on a loopback server answering with ``statuses``, and the requests it saw."""
    server, seen = serve(statuses, delay)
    try:
        yield Endpoint("openai/test-model", api_base=f"http://127.0.0.1:{server.server_port}/v1"), seen
    finally:
        server.shutdown()


SAMPLING = {"temperature": 0.0, "max_tokens": 16, "num_retries": 3, "retry_backoff": 0.01, "timeout": 10}


def test_429_twice_then_200_succeeds_with_retries_logged(tmp_path, caplog):
    with loopback([429, 429, 200]) as (endpoint, seen):
        client = Client(cache_dir=tmp_path)
        with caplog.at_level("WARNING", logger="cbtflow.llm.api"):
            reply = client.chat(endpoint, [{"role": "user", "content": "hi"}], SAMPLING, seed=1)
        assert reply["text"] == "Hello from loopback." and reply["completion_tokens"] == 4
        assert len(seen) == 3
        retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
        assert len(retries) == 2 and all("429" in r for r in retries)
        assert seen[0]["seed"] == 1 and seen[0]["messages"] == [{"role": "user", "content": "hi"}]
        # The reply is cached: asking again makes no request.
        client.chat(endpoint, [{"role": "user", "content": "hi"}], SAMPLING, seed=1)
        assert len(seen) == 3 and client.usage.totals()["cache_hits"] == 1


def test_persistent_500_fails_with_the_status(tmp_path):
    with loopback([500]) as (endpoint, seen):
        with pytest.raises(APICallError, match="500"):
            Client(cache_dir=tmp_path).chat(endpoint, [{"role": "user", "content": "hi"}], SAMPLING, seed=1)
        assert len(seen) == 4, "first try + 3 retries"


def test_bad_request_is_not_retried(tmp_path):
    with loopback([400]) as (endpoint, seen):
        with pytest.raises(APICallError, match="400"):
            Client().chat(endpoint, [{"role": "user", "content": "hi"}], SAMPLING, seed=1)
        assert len(seen) == 1


def test_a_failing_call_keeps_the_paid_ones_before_it(tmp_path):
    with loopback([200, 400]) as (endpoint, seen):
        client = Client(cache_dir=tmp_path, concurrency=1)
        conversations = [[{"role": "user", "content": "first"}], [{"role": "user", "content": "second"}]]
        with pytest.raises(APICallError):
            client.chat_batch(endpoint, conversations, SAMPLING, [1, 2])
        assert client.cache.stats()["entries"] == 1
        again = Client(cache_dir=tmp_path).chat(endpoint, conversations[0], SAMPLING, seed=1)
        assert again["cached"] is True and len(seen) == 2


def test_fallback_answers_when_the_model_keeps_failing(tmp_path, caplog):
    """A role's `fallbacks` are tried after its retries; the reply, its cache entry and the
    usage log name the model that answered."""
    with loopback([503]) as (primary, failed), loopback([200]) as (backup, answered):
        endpoint = Endpoint.from_spec(
            {
                "model": primary.model,
                "api_base": primary.api_base,
                "fallbacks": [{"model": "openai/backup-model", "api_base": backup.api_base}],
            }
        )
        client = Client(cache_dir=tmp_path)
        with caplog.at_level("WARNING", logger="cbtflow.llm.api"):
            reply = client.chat(endpoint, [{"role": "user", "content": "hi"}], SAMPLING, seed=1)
        assert len(failed) == 4 and len(answered) == 1 and answered[0]["model"] == "backup-model"
        assert reply["text"] == "Hello from loopback." and reply["model"] == "openai/backup-model"
        assert any("falling back to openai/backup-model" in r.getMessage() for r in caplog.records)
        assert set(client.usage.by_model) == {"openai/backup-model"}
        assert client.cache.stats()["by_model"] == {"openai/backup-model": 1}
        # A rerun reproduces the fallback's reply from the cache, still attributed to it.
        again = Client(cache_dir=tmp_path).chat(endpoint, [{"role": "user", "content": "hi"}], SAMPLING, seed=1)
        assert again["cached"] and again["model"] == "openai/backup-model" and len(answered) == 1


def test_every_model_failing_names_each_failure():
    with loopback([500]) as (primary, _), loopback([400]) as (backup, _):
        endpoint = Endpoint(
            primary.model, api_base=primary.api_base, fallbacks=(("openai/backup-model", backup.api_base),)
        )
        with pytest.raises(APICallError, match=r"test-model.*500.*then openai/backup-model.*400"):
            Client().chat(endpoint, [{"role": "user", "content": "hi"}], SAMPLING, seed=1)


@pytest.mark.parametrize("limit, peak", [(1, 1), (None, 4)])
def test_a_role_concurrency_limit_caps_calls_in_flight(limit, peak):
    from cbtflow.runtime import client

    server, seen = serve([200], delay=0.3)
    try:
        endpoint = Endpoint("openai/test-model", api_base=f"http://127.0.0.1:{server.server_port}/v1")
        patient = {"model": endpoint.model, "api_base": endpoint.api_base, "sampling": {}}
        if limit:
            patient["concurrency"] = limit
        llm = client(None, {"roles": {"patient": patient}, "judges": {}})
        conversations = [[{"role": "user", "content": f"session {i}"}] for i in range(4)]
        llm.chat_batch(endpoint, conversations, SAMPLING, [1, 2, 3, 4])
        assert len(seen) == 4 and server.flight["peak"] == peak
    finally:
        server.shutdown()


def test_a_patient_that_keeps_failing_loses_only_its_session(tmp_path):
    """One session's patient calls fail after retries: with max_failures the session ends as
    role_failed with the reason, the others finish, and nothing failed is cached."""
    from cbtflow.dialogue import Party, Session, run_sessions

    def patient_status(request):
        return 500 if "LOSE" in request["messages"][0]["content"] else 200

    with loopback([200]) as (therapist, _), loopback(patient_status) as (patient, seen):
        sampling = {**SAMPLING, "num_retries": 0}
        sessions = [
            Session(therapist_system="T", patient_system=name, seed=i) for i, name in enumerate(["KEEP", "LOSE"])
        ]
        client = Client(cache_dir=tmp_path)
        done = run_sessions(
            client,
            sessions,
            Party(therapist, sampling),
            Party(patient, sampling),
            max_turns=4,
            tolerate_patient_failures=True,
        )
        assert [s.ending for s in done] == ["max_turns", "role_failed"]
        assert "patient: openai/test-model" in done[1].failure and "500" in done[1].failure
        assert len(done[0].turns) == 4 and len(done[1].turns) == 1, "the lost session stops at its patient's turn"
        with pytest.raises(APICallError):  # without a failure budget the job fails, as before
            run_sessions(Client(), [Session("T", "LOSE", 9)], Party(therapist, sampling), Party(patient, sampling), 2)
    assert client.cache.stats()["entries"] == 4 + 1, (
        "KEEP's four turns and LOSE's opening; the failed call is not cached"
    )
