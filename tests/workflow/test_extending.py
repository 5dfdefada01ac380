"""README, "Extending cbtflow": a new judge kind is one new module, and an instrument is data.
This test follows those steps in a copy of the library: it adds a toy kind (a heuristic that
scores the therapist's questions) as ``src/cbtflow/judge/kinds/toy.py`` and nothing else,
then runs the workflow on the second packaged instrument (``judging.instrument: skills``)
with a scripted generator, patient and LLM judge; the kind's settings, inputs, scores, card,
estimate and report all come from its declaration, the scores from the instrument's file."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from workspace import ROOT, TINY, make_workspace, snakemake

pytestmark = pytest.mark.workflow

TOY_KIND = '''
"""A toy judge kind: every item scores the share of therapist turns that ask a question."""

from cbtflow.judge.kinds import CallPlan, JudgeKind, Reads, Scorer, register


class QuestionShare(Scorer):
    def _share(self, transcript):
        turns = [t["text"] for t in transcript["turns"] if t["role"] == "therapist"]
        lo, hi = self.job.rubric["scale"]["min"], self.job.rubric["scale"]["max"]
        share = sum("?" in t for t in turns) / len(turns) if turns else 0.0
        return round(lo + (hi - lo) * share * self.job.judge["weight"], 4)

    def score(self, transcript, out_path, seed):
        return {i["id"]: {"score": self._share(transcript)} for i in self.job.rubric["items"]}

    def safety(self, transcript, out_path, seed):
        return {"safety": {"score": self._share(transcript)}}

    def crisis(self, transcript, out_path, seed):
        return {i["id"]: {"score": 1} for i in self.job.crisis["rubric"]["items"]}


@register
class Toy(JudgeKind):
    name = "toy"
    description = "Share of therapist turns that ask a question (a toy heuristic)."
    heuristic = True
    fields = {"weight": {"type": "number", "minimum": 0, "maximum": 1, "default": 1.0}}

    def reads(self, judge, facts):
        return Reads()

    def scorer(self, job):
        return QuestionShare(job)

    def plan(self, judge, work):
        return [CallPlan("", 0, 0, 0)]
'''


def test_a_new_judge_kind_is_one_module(tmp_path, embedded_model):
    work = tmp_path / "work"
    work.mkdir()
    config = {
        **TINY,
        # No adapter to train: the extension, not the training, is under test.
        "conditions": ["instruct", "prompted"],
        "roles": {
            "generator": {"name": "scripted", "model": "scripted/generator", "sampling": {"max_tokens": 24}},
            "patient": {"model": "scripted/patient", "sampling": {"max_tokens": 24}},
        },
        "simulation": {"max_turns": 4, "measures": []},
        "judges": {"toy": {"kind": "toy", "weight": 0.5}, "scripted": {"kind": "llm", "model": "scripted/judge"}},
        "judging": {"instrument": "skills"},
        "validation": {"perturbations": ["drop_agenda", "filler_padding"]},  # drop_agenda lowers skills' structure
        "report": {"primary_judge": "toy"},
    }
    make_workspace(work, config, embedded_model)
    shutil.copytree(ROOT / "src", work / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (work / "src" / "cbtflow" / "judge" / "kinds" / "toy.py").write_text(TOY_KIND.lstrip(), encoding="utf-8")
    library = {"PYTHONPATH": str(work / "src")}  # the copy with the new module, ahead of the installed one

    bad = yaml.safe_load((work / "config.yaml").read_text())
    bad["judges"]["toy"]["weight"] = 3
    (work / "bad.yaml").write_text(yaml.safe_dump(bad))
    refused = snakemake(work, "-n", "--configfile", "bad.yaml", extra_env=library)
    assert refused.returncode != 0 and "config.judges.toy.weight" in refused.stdout + refused.stderr

    done = snakemake(work, extra_env=library)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    scores = sorted((work / "results" / "ctrs" / "toy").rglob("eval-*.json"))
    assert scores, "the toy judge scored nothing"
    skills = yaml.safe_load((ROOT / "resources/skills/skills.yaml").read_text())
    for path in scores:
        doc = json.loads(path.read_text())
        if doc["status"] != "scored":
            continue
        assert doc["judge_kind"] == "toy" and doc["heuristic"] is True and doc["mode"] == "toy"
        assert doc["rubric"] == "skills" and set(doc["items"]) == {i["id"] for i in skills["items"]}
        assert all(0 <= item["score"] <= 2 for item in doc["items"].values()), "weight 0.5 halves the 0-4 scale"
        assert doc["max_total"] == 20
    scripted = [json.loads(p.read_text()) for p in (work / "results" / "ctrs" / "scripted").rglob("eval-*.json")]
    assert scripted and all(set(d["items"]) == {i["id"] for i in skills["items"]} for d in scripted)
    assert all(0 <= v["score"] <= 4 for d in scripted for v in d["items"].values())
    card = json.loads((work / "results" / "judge_cards" / "toy.json").read_text())
    assert card["judge"] == "toy" and card["heuristic"] is True
    assert "drop_agenda" in json.dumps(card["perturbations"]) and "structure" in json.dumps(card["perturbations"])
    report = (work / "results" / "report" / "report.md").read_text()
    assert "toy" in report
    plan = subprocess.run(
        [sys.executable, "-m", "cbtflow.cli", "estimate", "--configfile", "config.yaml"],
        cwd=work,
        env={**os.environ, **library},
        capture_output=True,
        text=True,
    )
    assert plan.returncode == 0, plan.stderr
    assert "toy (no model)" in plan.stdout
