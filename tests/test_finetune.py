import builtins
import sys
from pathlib import Path

import pytest

from cbtflow.train import finetune
from cbtflow.train.backends import training_backend

ROOT = Path(__file__).resolve().parents[1]
CONVERSATION = [
    {"role": "system", "content": "You are a CBT therapist."},
    {"role": "user", "content": "[The client has arrived for the session.]"},
    {"role": "assistant", "content": "Welcome. What would you like to focus on today?"},
    {"role": "user", "content": "My low mood at work."},
    {"role": "assistant", "content": "Let's look at the thoughts that come up there."},
]


@pytest.fixture(scope="module")
def smol_tokenizer(embedded_model):
    from cbtflow.llm.local import load_tokenizer

    return load_tokenizer(embedded_model)


@pytest.fixture(scope="module")
def llama3_tokenizer(embedded_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(embedded_model)
    tok.add_special_tokens(
        {
            "bos_token": "<|begin_of_text|>",
            "additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        }
    )
    tok.chat_template = (ROOT / "tests/data/llama3_chat_template.jinja").read_text()
    return tok


@pytest.mark.parametrize("name, end_marker", [("smol_tokenizer", "<|im_end|>"), ("llama3_tokenizer", "<|eot_id|>")])
def test_only_therapist_tokens_are_trained(request, name, end_marker):
    tok = request.getfixturevalue(name)
    row = finetune.tokenize_with_mask(tok, CONVERSATION)
    ids, mask = row["input_ids"], row["assistant_masks"]
    assert len(ids) == len(mask)
    # Walk the mask's runs: each trained run is exactly one assistant message + its end marker.
    runs, current = [], []
    for token, bit in zip(ids, mask):
        if bit:
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    decoded = [tok.decode(run).strip() for run in runs]
    assistants = [m["content"] for m in CONVERSATION if m["role"] == "assistant"]
    assert decoded == [a + end_marker for a in assistants]
    untrained = tok.decode([t for t, bit in zip(ids, mask) if not bit])
    for m in CONVERSATION:
        if m["role"] != "assistant":
            assert m["content"] in untrained, "system and patient text must be masked"
    # TRL turns assistant_masks into labels: every masked position becomes -100.
    labels = [t if bit else finetune.IGNORE for t, bit in zip(ids, mask)]
    assert sum(label != finetune.IGNORE for label in labels) == sum(len(r) for r in runs)


def test_long_sessions_split_at_turn_boundaries(smol_tokenizer):
    long = CONVERSATION[:2] + [
        {"role": "assistant" if i % 2 == 0 else "user", "content": f"Turn {i} " + "word " * 30} for i in range(8)
    ]
    pieces = finetune.split_at_turns(smol_tokenizer, long, max_length=150)
    assert len(pieces) > 1
    seen = []
    for piece in pieces:
        assert piece[0] == long[0], "the system prompt is repeated in every piece"
        assert len(finetune._render_ids(smol_tokenizer, piece, False)) <= 150
        seen += [m["content"] for m in piece[1:]]
    originals = [m["content"] for m in long[1:]]
    assert all(text in originals for text in seen), "no turn is cut"


def test_backend_choice(monkeypatch):
    import importlib.util

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    real_find = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == "unsloth" else real_find(name, *a)
    )
    assert finetune.select_backend() == "unsloth"
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "unsloth" else real_find(name, *a)
    )
    assert finetune.select_backend() == "peft-bnb"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(importlib.util, "find_spec", real_find)
    assert finetune.select_backend() == "peft-cpu"


def test_cpu_backend_never_imports_unsloth(monkeypatch, embedded_model):
    real_import = builtins.__import__

    def guarded(name, *args, **kwargs):
        if name.split(".")[0] == "unsloth":
            raise AssertionError("unsloth imported on the CPU path")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", guarded)
    recipe = {
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj"]},
        "training": {"max_seq_length": 128},
    }
    model, tok = training_backend("peft-cpu").load(embedded_model, recipe, seed=1)
    assert "unsloth" not in sys.modules
    assert model.peft_config["default"].r == 4


def test_named_chat_template_overrides_the_base(embedded_model):
    from cbtflow.llm import Endpoint
    from cbtflow.llm.local import load_tokenizer

    llama3 = str(ROOT / "resources/chat_templates/llama3.jinja")
    tok = load_tokenizer(embedded_model, llama3)
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert "<|start_header_id|>user<|end_header_id|>" in text
    plain = Endpoint(f"local/{embedded_model}").identity()
    templated = Endpoint(f"local/{embedded_model}", chat_template=llama3).identity()
    assert plain != templated, "a different template is a different cache identity"


@pytest.mark.parametrize("name", ["smol_tokenizer", "llama3_tokenizer"])
def test_trl_collated_batch_trains_only_therapist_tokens(request, name, embedded_model, tmp_path):
    """The batch TRL's own collator builds from our rows (the finetune rule's trainer):
    labels are -100 outside therapist spans and padding, and equal the input ids inside."""
    from transformers import AutoModelForCausalLM

    tok = request.getfixturevalue(name)
    second = CONVERSATION[:3] + [
        {"role": "user", "content": "Nothing, really."},
        {"role": "assistant", "content": "That is fine. Shall we start with your week?"},
        {"role": "user", "content": "Okay."},
        {"role": "assistant", "content": "What was the hardest moment?"},
    ]
    rows = [finetune.tokenize_with_mask(tok, c) for c in (CONVERSATION, second)]
    model = AutoModelForCausalLM.from_pretrained(embedded_model)
    if len(tok) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tok))
    recipe = {"learning_rate": 1e-4, "epochs": 1, "batch_size": 2, "max_seq_length": 256}
    args = finetune.sft_config(recipe, "peft-cpu", 1, str(tmp_path / name), False)
    trainer = finetune.build_trainer(model, tok, rows, [], args, "peft-cpu")
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 2
    by_length = {len(r["input_ids"]): r for r in rows}
    for ids, labels, attention in zip(
        batch["input_ids"].tolist(), batch["labels"].tolist(), batch["attention_mask"].tolist()
    ):
        real = [i for i, a in zip(ids, attention) if a]
        row = by_length[len(real)]
        assert real == row["input_ids"], "TRL kept our tokenization"
        real_labels = [lab for lab, a in zip(labels, attention) if a]
        for token, label, bit in zip(row["input_ids"], real_labels, row["assistant_masks"]):
            assert label == (token if bit else finetune.IGNORE)
        assert all(lab == finetune.IGNORE for lab, a in zip(labels, attention) if not a), "padding is not trained"
        assert sum(row["assistant_masks"]) > 0


def test_unsloth_is_imported_before_trl_transformers_and_peft(tmp_path):
    """With a stand-in ``unsloth`` module on the path, the finetune rule's imports reach it
    before trl, transformers or peft are loaded (Unsloth patches them on import)."""
    import subprocess

    stand_in = tmp_path / "unsloth"
    stand_in.mkdir()
    (stand_in / "__init__.py").write_text(
        "import json, sys\n"
        "LOADED = [m for m in ('trl', 'transformers', 'peft', 'datasets') if m in sys.modules]\n"
        f"open({str(tmp_path / 'seen.json')!r}, 'w').write(json.dumps(LOADED))\n"
        "class FastLanguageModel:\n"
        "    @staticmethod\n"
        "    def from_pretrained(**kwargs):\n"
        "        raise SystemExit(0)\n"
    )
    script = (
        "import cbtflow.train.finetune as f, cbtflow.io, cbtflow.runtime\n"
        "f.train_adapter(base='x', dataset_dir='y', recipe={'lora': {}, 'training': {'max_seq_length': 8}}, "
        "seed=1, out_dir='z', backend='unsloth')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "seen.json").read_text() == "[]"


@pytest.mark.parametrize(
    "bf16_supported, expected", [(True, {"bf16": True, "fp16": False}), (False, {"bf16": False, "fp16": True})]
)
def test_precision_follows_the_gpu(monkeypatch, bf16_supported, expected):
    import torch

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_supported)
    assert training_backend("unsloth").mixed_precision() == expected == training_backend("peft-bnb").mixed_precision()
    from cbtflow.llm.local import precision

    for native in (True, False):  # a CPU trains with bf16 autocast where it computes bf16 natively
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda native=native: native)
        assert training_backend("peft-cpu").mixed_precision() == {"bf16": native, "fp16": False}


def test_mistral_v03_template_gets_the_system_prompt_folded(smol_tokenizer):
    """Mistral v0.3's published template renders the system text only inside the last user
    turn, so it is not prefix-stable; folding the system text into the first user turn makes
    it so, and the mask still covers exactly the therapist turns."""
    import copy

    tok = copy.deepcopy(smol_tokenizer)
    tok.chat_template = (ROOT / "tests/data/mistral_v03_chat_template.jinja").read_text()
    assert not finetune.prefix_stable(tok, CONVERSATION)
    folded = finetune.fold_system_prompt(CONVERSATION)
    assert finetune.prefix_stable(tok, folded) and folded[0]["content"].startswith(CONVERSATION[0]["content"])
    row = finetune.tokenize_with_mask(tok, CONVERSATION)
    trained = tok.decode([t for t, bit in zip(row["input_ids"], row["assistant_masks"]) if bit])
    for message in CONVERSATION:
        if message["role"] == "assistant":
            assert message["content"] in trained
        else:
            assert message["content"] not in trained
    untrained = tok.decode([t for t, bit in zip(row["input_ids"], row["assistant_masks"]) if not bit])
    assert "You are a CBT therapist." in untrained and "[INST]" in untrained
