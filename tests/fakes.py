"""Stand-ins the tests share: scores with known structure, and a loopback OpenAI-compatible server."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import polars as pl

from cbtflow.instrument import item_ids, load_rubric
from cbtflow.judge.scores import scores_table
from cbtflow.packaged import DEFAULT_RUBRIC

ITEMS = item_ids(load_rubric(DEFAULT_RUBRIC, "ctrs-modified"))


def rater_table(seed: int = 0, models=("m1", "m2"), profiles: int = 6) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    docs = []
    for model in models:
        for p in range(profiles):
            for s in (1, 2):
                for condition in ("instruct", "cbt"):
                    scores = rng.integers(0, 7, size=len(ITEMS)) + (condition == "cbt")
                    scores = np.minimum(scores, 6)
                    docs.append(
                        {
                            "judge": "rater",
                            "model": model,
                            "condition": condition,
                            "seed": s,
                            "profile_id": f"eval-{p:03d}",
                            "items": {i: {"score": float(v)} for i, v in zip(ITEMS, scores)},
                            "total": float(scores.sum()),
                            "percent": 100 * float(scores.sum()) / 66,
                        }
                    )
    return scores_table(docs)


def make_scores(
    rng,
    models=("a", "b", "c"),
    n_profiles=8,
    seeds=(1, 2),
    effect=None,
    model_shift=None,
    drop=(),
    ties=False,
    shared_baseline=(),
):
    """Scores documents with a patient level per profile, a per-profile response to tuning
    and sampling noise. Models in ``shared_baseline`` get identical instruct transcripts."""
    effect = effect or {}
    model_shift = model_shift or {}
    patient = {p: rng.normal(30, 5) for p in range(n_profiles)}
    response = {p: rng.normal(0, 2) for p in range(n_profiles)}
    shared: dict = {}
    docs = []
    for m in models:
        for p in range(n_profiles):
            for s in seeds:
                for cond in ("instruct", "cbt"):
                    if (m, p, s, cond) in drop:
                        continue
                    items = rng.integers(0, 7, size=11).astype(float) if ties else rng.uniform(0, 6, size=11)
                    tuned = cond == "cbt"
                    total = (
                        patient[p]
                        + model_shift.get(m, 0)
                        + (effect.get(m, 0) + response[p] if tuned else 0)
                        + rng.normal(0, 2)
                    )
                    if ties:
                        total = float(round(total))
                    transcript = f"{m}|{cond}|{s}|{p}"
                    if not tuned and m in shared_baseline:
                        transcript = f"shared|{s}|{p}"
                        total = shared.setdefault((p, s), total)
                    docs.append(
                        {
                            "judge": "j",
                            "heuristic": False,
                            "model": m,
                            "condition": cond,
                            "seed": s,
                            "profile_id": f"eval-{p:03d}",
                            "transcript_sha256": transcript,
                            "items": {f"i{k}": {"score": float(v)} for k, v in enumerate(items)},
                            "total": total,
                            "percent": 100 * total / 66,
                        }
                    )
    return scores_table(docs)


REPLY = {
    "id": "x",
    "object": "chat.completion",
    "created": 0,
    "model": "test-model",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hello from loopback."}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11},
}


def serve(statuses, delay=0.0, content=None, usage=None):
    """A loopback server answering each request with the next status (or ``statuses(request)``; 200 = a completion,
    whose text is ``content(request)`` when given and whose usage is ``usage`` when given), after `delay` seconds;
    `seen` gets each request, and `server.flight["peak"]` is the most requests it had in flight at once."""
    seen, lock, flight = [], threading.Lock(), {"now": 0, "peak": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            with lock:
                flight["now"] += 1
                flight["peak"] = max(flight["peak"], flight["now"])
            time.sleep(delay)
            with lock:
                flight["now"] -= 1
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(request)
            status = statuses(request) if callable(statuses) else statuses[min(len(seen) - 1, len(statuses) - 1)]
            reply = (
                REPLY
                if content is None
                else {
                    **REPLY,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content(request)},
                            "finish_reason": "stop",
                        }
                    ],
                }
            )
            if usage is not None:
                reply = {**reply, "usage": usage}
            body = json.dumps(reply if status == 200 else {"error": {"message": f"status {status}"}}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.flight = flight
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


def run_judge(
    client, transcripts, out_paths, judge, rubric, templates, lexicon, seed, detectors=None, crisis_spec=None
):
    """A judge job over a test's own rubric, templates and data, scored as the rule scores:
    the judge's settings completed with the schema's defaults (as a validated config passes
    them) and the packaged detectors unless a test gives its own."""
    from cbtflow.config import with_schema_defaults
    from cbtflow.data.detectors import load_detectors
    from cbtflow.judge.kinds import JudgeJob, kind_of
    from cbtflow.judge.run import judge_transcripts
    from cbtflow.llm import Endpoint
    from cbtflow.packaged import RESOURCES

    judge = with_schema_defaults(judge, "judges", "*")
    endpoint = Endpoint.from_spec(judge["endpoint"]) if kind_of(judge).calls_model else None
    detectors = detectors if detectors is not None else load_detectors(RESOURCES / "detectors.yaml")
    data = {"lexicon": lexicon} if lexicon else {}
    job = JudgeJob(client, judge, rubric, templates, data, endpoint, crisis_spec, detectors)
    return judge_transcripts(job, transcripts, out_paths, seed)
