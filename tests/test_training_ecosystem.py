"""Fine-tuning that survives a crash and reports as Hugging Face users expect: checkpoints
and resume, TensorBoard event files, model and dataset cards, the push plan, no secrets."""

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cbtflow.data.dataset import save_dataset_dict
from cbtflow.push import describe, plan
from cbtflow.train import checkpoints
from cbtflow.train.cards import dataset_card, model_card, write_card
from cbtflow.train.finetune import train_adapter

PLANTED = "hf_planted0123456789secret"
RECIPE = {
    "base": "smollm2-135m",
    "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
    "training": {"learning_rate": 1e-3, "epochs": 1, "batch_size": 1, "max_seq_length": 128, "checkpoint_steps": 1},
}


def _dataset(tmp_path: Path) -> str:
    rows = []
    for i in range(6):
        messages = [
            {"role": "system", "content": "You are a CBT therapist."},
            {"role": "user", "content": f"I feel low about week {i}."},
            {"role": "assistant", "content": f"What went through your mind in week {i}? Let's look at the evidence."},
        ]
        split = "validation" if i == 4 else "train"
        rows.append({"messages": messages, "course": f"c{i}", "session": 1, "phase": "assessment", "split": split})
    save_dataset_dict(rows, tmp_path / "data.hf")
    return str(tmp_path / "data.hf")


def _train(embedded_model, data, out, recipe=RECIPE):
    return train_adapter(base=embedded_model, dataset_dir=data, recipe=recipe, seed=3, out_dir=str(out), threads=1)


class Crash(RuntimeError):
    pass


def test_a_crashed_run_resumes_from_its_last_complete_checkpoint(embedded_model, tmp_path, monkeypatch):
    data = _dataset(tmp_path)
    whole = _train(embedded_model, data, tmp_path / "whole/adapters/m/seed3")
    assert not checkpoints.checkpoint_dir(tmp_path / "whole/adapters/m/seed3").exists(), "removed once final"
    original = checkpoints.marker_callback

    def crash_after_two():  # the kill: the run dies after its second checkpoint is written
        marker = original()

        class Then(type(marker)):
            def on_save(self, args, state, control, **kwargs):
                super().on_save(args, state, control, **kwargs)
                if state.global_step == 2:
                    raise Crash("killed")

        return Then()

    out = tmp_path / "run/adapters/m/seed3"
    monkeypatch.setattr(checkpoints, "marker_callback", crash_after_two)
    with pytest.raises(Crash):
        _train(embedded_model, data, out)
    work = checkpoints.checkpoint_dir(out)
    assert [s for s, _ in checkpoints.complete_checkpoints(work)] == [1, 2] and not out.exists()
    (work / "checkpoint-3").mkdir()  # cut off mid-save: no marker, never loaded
    monkeypatch.setattr(checkpoints, "marker_callback", original)
    resumed = _train(embedded_model, data, out)
    assert resumed["resumed_from_step"] == 2 and not (work / "checkpoint-3").exists()
    assert [p["step"] for p in resumed["loss_curve"]] == list(range(1, whole["steps"] + 1)), "one continuous curve"
    assert resumed["loss_curve"][:2] == whole["loss_curve"][:2], "the steps before the crash are the ones it logged"
    a = load_file(str(tmp_path / "whole/adapters/m/seed3/adapter_model.safetensors"))
    b = load_file(str(out / "adapter_model.safetensors"))
    assert resumed["loss_curve"] == whole["loss_curve"], "the resumed run trains exactly as the uninterrupted one"
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "the same adapter, bit for bit"


def _events(directory: Path) -> dict[str, list[float]]:
    """Scalars in TensorBoard event files (TFRecord framing, tensorboardX's Event protos)."""
    from tensorboardX.proto.event_pb2 import Event

    scalars: dict[str, list[float]] = {}
    for path in directory.rglob("events.out.tfevents.*"):
        raw = path.read_bytes()
        offset = 0
        while offset < len(raw):
            (length,) = struct.unpack("<Q", raw[offset : offset + 8])
            event = Event.FromString(raw[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append(value.simple_value)
    return scalars


def test_tensorboard_events_beside_the_adapter_hold_the_loss_and_no_key(embedded_model, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", PLANTED)
    monkeypatch.setenv("WANDB_API_KEY", PLANTED)
    recipe = {**RECIPE, "training": {**RECIPE["training"], "report_to": ["tensorboard"], "checkpoint_steps": 2}}
    out = tmp_path / "results/adapters/m/seed3"
    log = train_adapter(
        base=embedded_model, dataset_dir=_dataset(tmp_path), recipe=recipe, seed=3, out_dir=str(out), name="m-seed3-x"
    )
    scalars = _events(out / "runs")
    assert len(scalars["train/loss"]) == log["steps"]
    assert scalars["train/loss"] == pytest.approx([p["loss"] for p in log["loss_curve"]], rel=1e-5)
    assert "train/learning_rate" in scalars and log["run_name"] == "m-seed3-x"
    for path in [*out.rglob("*"), *(tmp_path / "results").rglob("*")]:
        if path.is_file():
            assert PLANTED.encode() not in path.read_bytes(), path


def test_an_unavailable_tracker_is_refused_naming_the_field(embedded_model, tmp_path):
    recipe = {**RECIPE, "training": {**RECIPE["training"], "report_to": ["mlflow"]}}
    with pytest.raises(ValueError, match="training.report_to: 'mlflow' needs the mlflow package"):
        train_adapter(
            base=embedded_model, dataset_dir=_dataset(tmp_path), recipe=recipe, seed=3, out_dir=str(tmp_path / "a")
        )


def test_cards_parse_with_huggingface_hub_and_hold_their_fields(tmp_path):
    from huggingface_hub import DatasetCard, ModelCard

    log = {"backend": "peft-cpu", "steps": 5, "tokens_seen": 400, "first_quarter_loss": 2.0, "last_quarter_loss": 1.5}
    card = model_card(
        model="m", seed=3, source="embedded", recipe=RECIPE, train_log=log, dataset="smollm2", license="apache-2.0"
    )
    write_card(card, tmp_path / "README.md")
    back = ModelCard.load(tmp_path / "README.md")
    assert back.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct" and back.data.library_name == "peft"
    assert back.data.datasets == ["smollm2"] and back.data.license == "apache-2.0" and "cbtflow" in back.data.tags
    assert back.data.training_hyperparameters["learning_rate"] == 1e-3 and back.data.training_results["steps"] == 5
    assert (
        "Research only" in back.text and "PeftModel.from_pretrained" in back.text and "not clinical advice" in back.text
    )
    local = model_card(
        model="m", seed=3, source=str(tmp_path), recipe=RECIPE, train_log=log, dataset="d", license="other"
    )
    assert local.data.base_model is None, "a local directory is no Hub id"
    dcard = dataset_card(name="smollm2", generator="local/smollm2-135m", stats={"examples": 4}, license="other")
    write_card(dcard, tmp_path / "data.md")
    dback = DatasetCard.load(tmp_path / "data.md")
    assert dback.data.to_dict()["cbtflow"] == {"generator": "local/smollm2-135m", "examples": 4}
    assert "invented patient" in dback.text


def test_the_push_dry_run_lists_every_file_of_every_repository(tmp_path):
    adapter = tmp_path / "results/adapters/m/seed3"
    (adapter / "runs/x").mkdir(parents=True)
    for name in ("adapter_model.safetensors", "adapter_config.json", "README.md", "train_log.json", "runs/x/ev"):
        (adapter / name).write_text("x")
    (tmp_path / "results/adapters/m/seed4.partial").mkdir()  # a killed run's staging: never uploaded
    data = tmp_path / "results/datasets/smollm2.hf/train"
    data.mkdir(parents=True)
    (data / "data.arrow").write_text("x")
    (data.parent / "README.md").write_text("card")
    uploads = plan(tmp_path / "results", "lab", adapters=True, dataset=True)
    assert [(u.repo_id, u.repo_type) for u in uploads] == [
        ("lab/cbtflow-m-seed3", "model"),
        ("lab/cbtflow-smollm2-cbt-courses", "dataset"),
    ]
    assert uploads[0].files == (
        "README.md", "adapter_config.json", "adapter_model.safetensors", "runs/x/ev", "train_log.json"
    )  # fmt: skip
    assert uploads[1].files == ("README.md", "train/data.arrow")
    assert "lab/cbtflow-m-seed3 (private)" in describe(uploads)
    (adapter / "README.md").unlink()
    with pytest.raises(ValueError, match="no model card"):
        plan(tmp_path / "results", "lab", adapters=True, dataset=False)
    with pytest.raises(ValueError, match="--namespace"):
        plan(tmp_path / "results", "a/b", adapters=False, dataset=True)


def test_incomplete_checkpoints_are_ignored_and_removed(tmp_path):
    for step, complete in ((2, True), (4, True), (6, False)):
        path = tmp_path / f"checkpoint-{step}"
        path.mkdir()
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
        if complete:
            (path / checkpoints.MARKER).write_text(str(step))
    (tmp_path / "tmp-checkpoint-8").mkdir()
    assert checkpoints.resume_point(tmp_path) == tmp_path / "checkpoint-4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2", "checkpoint-4"]
    assert checkpoints.resume_point(tmp_path / "none") is None
