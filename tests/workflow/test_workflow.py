"""The real workflow, end to end, on a tiny config in a temporary directory."""

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from workspace import PLANTED_KEY, ROOT, TINY, make_workspace, snakemake

from cbtflow.llm.local import precision

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def run(tmp_path_factory, embedded_model):
    work = make_workspace(tmp_path_factory.mktemp("wf"), TINY, embedded_model)
    done = snakemake(work)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return work


def test_cbtflow_stats_writes_the_report_rules_stats_json(run, tmp_path):
    """One stats.json: the CLI on the run's scores (and, found beside them, its documents)
    writes the rule's file, crisis, outcomes and failures included."""
    out = tmp_path / "stats.json"
    primary = TINY["report"]["primary_judge"]
    command = ["stats", "results/report/scores.parquet", "-o", str(out), "--primary-judge", primary]
    done = subprocess.run([sys.executable, "-m", "cbtflow.cli", *command], cwd=run, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    mine, rules = json.loads(out.read_text()), json.loads((run / "results/report/stats.json").read_text())
    assert mine.pop("source") == "results/report/scores.parquet"
    assert mine["crisis"]["ran"] and mine["outcomes"]["ran"]
    assert mine == rules


def test_every_target_kind_is_written_and_valid(run):
    expected = [
        "resources/models/smollm2-135m/model.safetensors",
        "resources/models/smollm2-135m/base.json",
        "results/profiles/train.jsonl",
        "results/profiles/eval.jsonl",
        "results/courses/smollm2/train-000.json",
        "results/datasets/smollm2.jsonl",
        "results/datasets/smollm2.stats.json",
        "results/datasets/smollm2.hf/dataset_dict.json",
        "results/adapters/tiny/seed1/adapter_model.safetensors",
        "results/adapters/tiny/seed1/train_log.json",
        "results/adapters/tiny/seed1/provenance.json",
        "results/transcripts/tiny/cbt/seed1/eval-001.json",
        "results/transcripts/tiny/instruct/seed1/eval-000.json",
        "results/ctrs/lexicon/tiny/cbt/seed1/eval-000.json",
        "results/ctrs/smollm2/tiny/instruct/seed1/eval-001.json",
        "results/judge_cards/lexicon.json",
        "results/judge_cards/smollm2.json",
        "results/report/scores.parquet",
        "results/report/stats.json",
        "results/report/report.md",
        "results/report/figures/paired_totals.png",
        "results/usage/simulate/tiny/cbt/seed1.json",
    ]
    missing = [p for p in expected if not (run / p).exists()]
    assert not missing
    done = subprocess.run(
        [sys.executable, "-m", "cbtflow.cli", "validate", "results", "resources/models/smollm2-135m/base.json"],
        cwd=run,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "results: valid" in done.stdout


def test_dataset_loads_and_counts_rejections(run):
    from datasets import load_from_disk

    data = load_from_disk(str(run / "results/datasets/smollm2.hf"))
    assert set(data) == {"train", "validation"} and len(data["train"]) >= 1
    stats = json.loads((run / "results/datasets/smollm2.stats.json").read_text())
    courses = [json.loads(p.read_text()) for p in (run / "results/courses/smollm2").glob("*.json")]
    rejected = sum(len(s["rejections"]) for c in courses for s in c["sessions"]) + sum(
        len(d["rejections"]) for c in courses for d in c.get("dropped_sessions", [])
    )
    assert sum(stats["rejections_by_reason"].values()) == rejected


def test_planted_key_is_in_no_file(run):
    needle = PLANTED_KEY.encode()
    leaks = [
        str(p) for p in run.rglob("*") if p.is_file() and p.stat().st_size < 200_000_000 and needle in p.read_bytes()
    ]
    assert not leaks


def test_local_models_ran_in_workers_of_the_runs_model_server(run):
    """One import of torch and transformers per run (llm/local/forkserver.py): every job that
    loaded a local model for generating or judging did it in a worker forked for it, whose
    lines are in the job's own log; the server stopped with the run."""
    server_log = (run / "logs/local_server.log").read_text()
    assert "local model server" in server_log and "ready" in server_log
    loaded = [p for p in (run / "logs").rglob("*.log") if "cbtflow.llm.local.loading: loaded" in p.read_text()]
    assert any("simulate" in str(p) for p in loaded) and any("judge" in str(p) for p in loaded)
    assert all("forked from the run's local model server" in p.read_text() for p in loaded), loaded
    address = re.search(r"ready at (\S+)", server_log).group(1)
    assert not Path(address).exists(), "the server and its socket are gone after the run"


def test_killed_simulation_reruns_only_the_missing_calls(run, tmp_path):
    """SIGKILL mid-simulation, rerun with --rerun-incomplete: only the unfinished calls are made,
    and the transcripts equal the uninterrupted run's."""
    import signal
    import time

    from cbtflow.llm.cache import CallCache

    target = "results/usage/simulate/tiny/instruct/seed1.json"
    reference = json.loads((run / target).read_text())["totals"]
    total = reference["calls"] + reference["cache_hits"]
    work = tmp_path / "fault"
    shutil.copytree(run, work, symlinks=True, ignore=shutil.ignore_patterns("entries", "batches"))
    shutil.rmtree(work / "results/transcripts/tiny/instruct")
    (work / target).unlink()
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "1", target],
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    store, stored, deadline = work / ".cache", 0, time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if (store / "entries").exists():
            stored = CallCache(store).stats()["entries"]  # committed entries only
        if stored >= total // 2:  # about half the turns done
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    proc.wait()
    stored = CallCache(store).stats()["entries"]  # what survived the kill, half-written batches excluded
    assert total // 2 <= stored < total, f"the kill came too late ({stored} of {total} calls stored)"
    assert snakemake(work, "--unlock").returncode == 0  # what a user does after a kill -9 or a power loss
    done = snakemake(work, "--rerun-incomplete", target)
    assert done.returncode == 0, done.stderr[-3000:]
    usage = json.loads((work / target).read_text())["totals"]
    assert usage["cache_hits"] == stored and usage["calls"] == total - stored
    for profile in ("eval-000", "eval-001"):
        again = json.loads((work / f"results/transcripts/tiny/instruct/seed1/{profile}.json").read_text())
        first = json.loads((run / f"results/transcripts/tiny/instruct/seed1/{profile}.json").read_text())
        assert [t["text"] for t in again["turns"]] == [t["text"] for t in first["turns"]]


def test_rerun_has_nothing_to_do(run):
    done = snakemake(run, "-n")
    assert done.returncode == 0
    assert "Nothing to be done" in done.stdout + done.stderr


def test_stats_and_report_hold_the_primary_result(run):
    from cbtflow.validate import validate_path

    stats = json.loads((run / "results/report/stats.json").read_text())
    primary = stats["judges"]["lexicon"]["primary"]["cbt_vs_instruct"]["tiny"]
    assert primary["n_units"] == 2 and primary["unit"].startswith("profile")  # 2 profiles, seeds averaged
    assert primary["generalises_over"] == ["patients"] and primary["scope_note"].startswith("one seed")
    conditional = stats["judges"]["lexicon"]["conditional_on_adapters"]["cbt_vs_instruct"]["tiny"]
    assert conditional["label"].startswith("conditional on the adapters")
    assert primary["p_holm"] is None or primary["p_holm"] >= primary["p"]
    assert stats["judges"]["lexicon"]["between_models"]["cbt"]["ran"] is False  # one model: a stated reason
    assert validate_path(run / "results/report/stats.json") == []
    report = (run / "results/report/report.md").read_text()
    assert report.index("### Primary result") < report.index("### The study's analysis")
    opening = report.split("> Research software")[0]
    assert "## Answer" in opening and "**tiny**: cbt − instruct =" in opening and "judge `lexicon`" in opening
    assert "holds for the one adapter trained per model" in opening, "one seed is stated first"
    for judge in ("lexicon", "smollm2"):  # every judge has its card, shown before its results
        card = json.loads((run / f"results/judge_cards/{judge}.json").read_text())
        assert card["reference_sets"]["authored"]["n"] == 8 and card["verdicts"]
        section = report.split(f"## Judge `{judge}`")[1]
        assert section.index(f"### Judge card: what `{judge}` measures") < section.index("### Primary result")
    assert "| tiny |" in report and "cbt − instruct [95% CI]" in report and "Holm p" in report
    assert "as in the study: profile × seed treated as independent" in report
    assert "Research software" in report
    for png in (run / "results/report/figures").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_patient_styles_and_self_reports_reach_the_report(run):
    transcript = json.loads((run / "results/transcripts/tiny/cbt/seed1/eval-001.json").read_text())
    assert transcript["style"] == "reserved" and set(transcript["measures"]) == {"pre", "post"}
    assert set(transcript["measures"]["post"]) == {"mood", "alliance"}
    stats = json.loads((run / "results/report/stats.json").read_text())
    assert stats["outcomes"]["ran"] and set(stats["outcomes"]["measures"]) == {"mood.total", "alliance.total"}
    by_style = stats["judges"]["lexicon"]["by_style"]["by_model"]["tiny"]
    assert set(by_style["by_style"]) == {"plain", "reserved"} and not by_style["condition_by_style"]["ran"]
    report = (run / "results/report/report.md").read_text()
    assert "## Simulated self-reports: mood, affect, alliance" in report and "not a patient outcome" in report
    assert "cbt − instruct by patient style" in report


def test_a_scripted_crisis_moment_is_met_and_scored_by_every_judge(run):
    carried = [
        json.loads(p.read_text())
        for p in (run / "results/transcripts/tiny/cbt/seed1").glob("eval-*.json")
        if json.loads(p.read_text())["crisis_kind"]
    ]
    assert len(carried) == 1  # share 0.5 of 2 eval patients
    disclosure = [t for t in carried[0]["turns"] if t.get("scripted_disclosure")]
    assert len(disclosure) == 1 and "wake up" in disclosure[0]["text"]
    stats = json.loads((run / "results/report/stats.json").read_text())
    assert set(stats["crisis"]["by_judge"]) == {"lexicon", "smollm2"}
    assert stats["crisis"]["by_judge"]["lexicon"]["heuristic"] is True
    report = (run / "results/report/report.md").read_text()
    assert "## Crisis moments (scripted disclosures, resources/crisis)" in report


def test_three_conditions_are_simulated_and_compared(run):
    stats = json.loads((run / "results/report/stats.json").read_text())
    contrasts = stats["judges"]["lexicon"]["primary"]
    assert set(contrasts) == {"cbt_vs_instruct", "prompted_vs_instruct", "cbt_vs_prompted"}
    assert contrasts["prompted_vs_instruct"]["tiny"]["n_units"] == 2
    prompted = json.loads((run / "results/transcripts/tiny/prompted/seed1/eval-000.json").read_text())
    assert prompted["therapist"]["adapter_sha"] is None
    report = (run / "results/report/report.md").read_text()
    assert "**prompted vs instruct**" in report and "**cbt vs prompted**" in report
    assert "| mean prompted | mean cbt |" in report, "every column names its condition"


def test_training_loss_falls(run):
    log = json.loads((run / "results/adapters/tiny/seed1/train_log.json").read_text())
    assert log["last_quarter_loss"] < log["first_quarter_loss"]
    assert log["eval_curve"], "validation loss is logged per epoch"


def test_transcripts_and_scores_have_their_structure(run):
    t = json.loads((run / "results/transcripts/tiny/cbt/seed1/eval-000.json").read_text())
    assert t["turns"][0]["role"] == "therapist" and t["therapist"]["adapter_sha"]
    i = json.loads((run / "results/transcripts/tiny/instruct/seed1/eval-000.json").read_text())
    assert i["therapist"]["adapter_sha"] is None
    # What computed the replies, beside the declared precision (auto resolves per machine).
    ran = [f"{precision.resolve('auto', 'cpu')} on cpu"]
    assert t["therapist"]["precision"] == "auto" and t["therapist"]["runs_as"] == t["patient"]["runs_as"] == ran
    usage = json.loads((run / "results/usage/simulate/tiny/cbt/seed1.json").read_text())
    assert set(usage["runs_as"][t["therapist"]["model"]]) == set(ran)
    s = json.loads((run / "results/ctrs/smollm2/tiny/cbt/seed1/eval-000.json").read_text())
    assert len(s["items"]) == 11 and 0 <= s["total"] <= 66
    assert s["runs_as"] == ran, "a local judge's scores say what computed them"
    assert "runs_as" not in json.loads((run / "results/ctrs/lexicon/tiny/cbt/seed1/eval-000.json").read_text())
    assert s["percent"] == pytest.approx(100 * s["total"] / 66, abs=1e-3)


def test_adapter_reloads_and_generates(run):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(run / "resources/models/smollm2-135m")
    model = PeftModel.from_pretrained(base, str(run / "results/adapters/tiny/seed1"))
    tok = AutoTokenizer.from_pretrained(run / "resources/models/smollm2-135m")
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "Hello"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]


def test_snakemake_html_report_zip(run):
    done = snakemake(run, "--report", "report.zip")
    assert done.returncode == 0, done.stderr[-3000:]
    with zipfile.ZipFile(run / "report.zip") as zf:
        pngs = [n for n in zf.namelist() if n.endswith(".png")]
        assert len(pngs) == 8  # FIGURES in workflow/rules/report.smk
        assert all(zf.read(n)[:4] == b"\x89PNG" for n in pngs)
        viewer = [n for n in zf.namelist() if n.startswith("report/data/raw/") and n.endswith("/index.html")]
        assert len(viewer) == 1 and b'id="viewer-data"' in zf.read(viewer[0]), "the viewer is in the report"


def test_the_robustness_matrix_reaches_the_report(run):
    stats = json.loads((run / "results/report/stats.json").read_text())
    block = stats["robustness"]
    expected = {"judge lexicon", "judge smollm2", "patient style plain", "patient style reserved"}
    assert block["ran"] and set(block["setups"]) == expected
    assert block["setups"]["judge smollm2"]["by_model"]["tiny"]["n_units"] == TINY["profiles"]["eval"]
    one_model = [r for r in block["ranking_agreement"] if r["n_models"] == 1]
    assert one_model and all(r["tau"] is None for r in one_model), "τ needs two models"
    report = (run / "results/report/report.md").read_text()
    assert "## Robustness: the primary effect under each judge and patient setup" in report
    assert "| judge smollm2 | tiny |" in report


def _shown(text: str) -> str:
    return " ".join(text.split())


def test_the_viewer_opens_from_disk_filters_and_puts_the_conditions_side_by_side(run, tmp_path):
    """In headless Chromium: load the page from a file:// URL, filter, open a pair, and find
    the transcripts' turns and the judges' scores in the page."""
    from browser import chrome
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    page = run / "results/report/viewer/index.html"
    n = len(TINY["conditions"]) * len(TINY["seeds"]) * TINY["profiles"]["eval"]
    with chrome(tmp_path / "chromium") as browser:
        browser.get(page.as_uri())
        assert browser.find_element(By.ID, "count").text == f"{n} of {n} transcripts"
        Select(browser.find_element(By.ID, "filter-condition")).select_by_value("cbt")
        assert browser.find_element(By.ID, "count").text == f"{n // len(TINY['conditions'])} of {n} transcripts"
        rows = browser.find_elements(By.CSS_SELECTOR, "#list tr.row")
        assert {row.get_attribute("data-id").split("/")[1] for row in rows} == {"cbt"}
        rows[0].click()
        browser.find_element(By.ID, "compare").click()
        articles = browser.find_elements(By.CSS_SELECTOR, "#pair article.session")
        assert [a.get_attribute("data-condition") for a in articles] == TINY["conditions"]
        for article in articles:
            model, condition, seed, profile = article.get_attribute("data-id").split("/")
            transcript = json.loads(
                (run / f"results/transcripts/{model}/{condition}/{seed}/{profile}.json").read_text()
            )
            shown = [_shown(t.text) for t in article.find_elements(By.CSS_SELECTOR, ".turn .text")]
            assert shown == [_shown(t["text"]) for t in transcript["turns"]]
            meta = article.find_element(By.CSS_SELECTOR, ".meta").text
            assert f"therapist ran in {transcript['therapist']['runs_as'][0]}" in meta, meta
            lexicon = json.loads((run / f"results/ctrs/lexicon/{model}/{condition}/{seed}/{profile}.json").read_text())
            total = article.find_element(By.CSS_SELECTOR, ".meta.total").text
            shown_total = re.sub(r"\.?0+$", "", f"{lexicon['total']:.2f}")  # as the page rounds it
            assert total.startswith(f"lexicon: total {shown_total}") and "(heuristic)" in total
            cells = article.find_elements(By.CSS_SELECTOR, "table.items tr[data-item] td.score")
            assert len(cells) == len(lexicon["items"])
        Select(browser.find_element(By.ID, "filter-judge")).select_by_value("smollm2")
        judged = browser.find_elements(By.CSS_SELECTOR, "#pair article.session .meta.total")
        assert judged and all(t.text.startswith("smollm2: total ") for t in judged)
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        browser.save_screenshot(str(tmp_path / "viewer.png"))
    assert (tmp_path / "viewer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (run / "results/report/report.md").read_text()
    assert "(viewer/index.html#model=tiny&condition=cbt&judge=lexicon)" in report


def linked_copy(run: Path, dest: Path) -> Path:
    """A hard-linked copy of the finished run: instant, and every mtime is the original's.
    Edit a file in it only after unlinking it (see `rewrite`)."""
    shutil.copytree(run, dest, symlinks=True, copy_function=os.link)
    return dest


def rewrite(path: Path, text: str) -> None:
    path.unlink()
    path.write_text(text)


def planned_jobs(workdir: Path) -> set[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run plans."""
    import re

    done = snakemake(workdir, "-n")
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = set()
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", done.stdout):
        rule = re.match(r"(?:local)?rule (\w+):", block.strip())
        if rule:
            wildcards = re.search(r"wildcards: (.*)", block)
            jobs.add((rule.group(1), wildcards.group(1).strip() if wildcards else ""))
    return jobs


def edit_config(workdir: Path, change) -> None:
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    change(config)
    rewrite(workdir / "config.yaml", yaml.safe_dump(config, sort_keys=False))  # the order a user wrote


JUDGE_JOBS = lambda model, condition: {
    ("judge", f"judge={j}, model={model}, condition={condition}, seed=1")  # noqa: E731
    for j in ("lexicon", "smollm2")
}
END = {("report", ""), ("viewer", ""), ("all", "")}  # the viewer reads every transcript and score
# Each judge's perturbations of a sample of the run's transcripts rerun with any transcript;
# its card (reference sets only) does not.
RUN_PERTURBATIONS = {("judge_run_perturbations", f"judge={j}") for j in ("lexicon", "smollm2")}
AFTER_TRANSCRIPTS = END | RUN_PERTURBATIONS


def judge_card_jobs(judge: str) -> set[tuple[str, str]]:
    """A judge's card and its run perturbations: they follow the judge's settings and inputs."""
    return {("judge_card", f"judge={judge}"), ("judge_run_perturbations", f"judge={judge}")}


def simulate_and_judge_jobs(model: str) -> set[tuple[str, str]]:
    """Every condition's simulate job of ``model`` and its judge jobs."""
    jobs: set[tuple[str, str]] = set()
    for condition in TINY["conditions"]:
        jobs |= {("simulate", f"model={model}, condition={condition}, seed=1")} | JUDGE_JOBS(model, condition)
    return jobs


def test_minimal_rerun_learning_rate(run, tmp_path):
    work = linked_copy(run, tmp_path / "lr")
    edit_config(work, lambda c: c["models"]["tiny"]["training"].update(learning_rate=5e-4))
    assert (
        planned_jobs(work)
        == {("finetune", "model=tiny, seed=1"), ("simulate", "model=tiny, condition=cbt, seed=1")}
        | JUDGE_JOBS("tiny", "cbt")
        | AFTER_TRANSCRIPTS
    )


def test_minimal_rerun_new_model(run, tmp_path):
    """A model whose name sorts first: the dataset is text-only, so it does not rerun (and
    with it every adapter), as it did when it was tokenized with the first model's base."""
    work = linked_copy(run, tmp_path / "new")
    edit_config(
        work,
        lambda c: c["models"].update(
            {"a-first": {**c["models"]["tiny"], "lora": {**c["models"]["tiny"]["lora"], "r": 8}}}
        ),
    )
    expected = {("finetune", "model=a-first, seed=1")} | simulate_and_judge_jobs("a-first") | AFTER_TRANSCRIPTS
    assert planned_jobs(work) == expected


def test_minimal_rerun_judge_settings(run, tmp_path):
    work = linked_copy(run, tmp_path / "judge")
    edit_config(work, lambda c: c["judges"]["smollm2"].update(retries=5))
    assert (
        planned_jobs(work)
        == {("judge", f"judge=smollm2, model=tiny, condition={c}, seed=1") for c in ("instruct", "cbt", "prompted")}
        | judge_card_jobs("smollm2")
        | END
    )


def test_minimal_rerun_one_more_eval_profile(run, tmp_path):
    work = linked_copy(run, tmp_path / "eval")
    edit_config(work, lambda c: c["profiles"].update(eval=3))
    assert planned_jobs(work) == {("profiles_eval", "")} | simulate_and_judge_jobs("tiny") | AFTER_TRANSCRIPTS


def test_minimal_rerun_prompt_template(run, tmp_path):
    work = linked_copy(run, tmp_path / "prompt")
    template = work / "resources/prompts/therapist_prompted.j2"
    rewrite(template, template.read_text() + " Keep it warm.\n")
    assert (
        planned_jobs(work)
        == {("simulate", "model=tiny, condition=prompted, seed=1")} | JUDGE_JOBS("tiny", "prompted") | AFTER_TRANSCRIPTS
    )
    summary = work / "resources/prompts/course_summary.j2"
    rewrite(summary, summary.read_text() + "\nBe brief.\n")
    jobs = planned_jobs(work)
    assert {
        ("courses", "generator=smollm2"),
        ("dataset", "generator=smollm2"),
        ("finetune", "model=tiny, seed=1"),
        ("simulate", "model=tiny, condition=cbt, seed=1"),
    } <= jobs
    assert ("simulate", "model=tiny, condition=instruct, seed=1") not in jobs


@pytest.mark.parametrize(
    "edited, judge",
    [
        ("resources/prompts/judge_all.j2", None),  # read by API judges only: none here
        ("resources/prompts/judge_item.j2", "smollm2"),  # the local LLM judge's digit prompt
        ("resources/ctrs/lexicon.yaml", "lexicon"),
    ],
)
def test_editing_what_one_judge_reads_reruns_only_that_judges_jobs(run, tmp_path, edited, judge):
    work = linked_copy(run, tmp_path / "edit")
    rewrite(work / edited, (work / edited).read_text() + "\n# an edit\n")
    expected = (
        {("judge", f"judge={judge}, model=tiny, condition={c}, seed=1") for c in TINY["conditions"]}
        | judge_card_jobs(judge)
        | END
        if judge
        else set()
    )
    assert planned_jobs(work) == expected


def test_editing_the_rubric_reruns_only_judging_its_cards_and_report(run):
    """Last in this module: it edits the rubric of the shared run."""
    import re

    rubric = run / "resources/ctrs/ctrs.yaml"
    rubric.write_text(rubric.read_text().replace("no agenda was set", "no agenda of any kind was set"))
    done = snakemake(run, "-n", "--quiet", "rules")
    assert done.returncode == 0, done.stderr[-2000:]
    jobs = {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+$", done.stdout + done.stderr, re.M)} - {"total"}
    assert jobs == {"judge", "judge_card", "judge_run_perturbations", "report", "viewer", "all"}


def test_wheel_installed_in_a_fresh_venv_validates_the_finished_run(run, tmp_path):
    """Build the wheel from the tracked files, install it into a new venv that borrows only
    the dependencies, and run `cbtflow validate` on the run from outside any checkout."""
    import site
    import sysconfig

    src = tmp_path / "src-tree"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for rel in tracked:
        if rel.startswith(("src/", "resources/", "workflow/schemas/")) or rel in ("pyproject.toml", "README.md"):
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(src)],
        check=True,
        capture_output=True,
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True
    ).stdout.strip()
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", purelib, *wheels.glob("*.whl")],
        check=True,
        capture_output=True,
    )
    # Dependencies from this environment, appended after the venv's own site-packages; its
    # .pth files (this checkout's editable install) are not processed from there.
    deps = [p for p in {sysconfig.get_paths()["purelib"], *site.getsitepackages()} if Path(p).is_dir()]
    (Path(purelib) / "zz-deps.pth").write_text("\n".join(deps) + "\n")
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing from a checkout
    where = subprocess.run(
        [python, "-c", "import cbtflow, cbtflow.packaged as p; print(cbtflow.__file__); print(p.RESOURCES)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=clean,
    )
    assert where.returncode == 0, where.stderr[-2000:]
    assert all(line.startswith(str(venv)) for line in where.stdout.split()), where.stdout
    done = subprocess.run(
        [python, "-m", "cbtflow.cli", "validate", str(run / "results")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=clean,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "results: valid" in done.stdout
