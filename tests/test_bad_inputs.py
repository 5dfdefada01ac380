"""Bad inputs stop with a message that names the file or field, and delete nothing."""

from pathlib import Path

import pytest

from cbtflow.data.profiles import ProfileError, load_profiles
from cbtflow.judge.run import check_transcript
from cbtflow.preflight import unknown_providers

ROOT = Path(__file__).resolve().parents[1]


def test_empty_profile_file_names_the_file(tmp_path):
    empty = tmp_path / "eval.jsonl"
    empty.write_text("")
    with pytest.raises(ProfileError, match=str(empty)):
        load_profiles(empty)
    junk = tmp_path / "junk.jsonl"
    junk.write_text('{"name": "x"}\n')
    with pytest.raises(ProfileError, match="line"):
        load_profiles(junk)


def test_one_speaker_transcript_names_the_file():
    doc = {"turns": [{"role": "therapist", "text": "Hello."}, {"role": "therapist", "text": "Still me."}]}
    with pytest.raises(ValueError, match="results/x.json: transcript has only one speaker"):
        check_transcript(doc, "results/x.json")
    check_transcript({"turns": doc["turns"][:1] + [{"role": "patient", "text": "Hi."}]}, "ok.json")


def test_corrupted_adapter_names_the_directory(tmp_path, embedded_model):
    from cbtflow.llm import Endpoint, local

    adapter = tmp_path / "adapters" / "m" / "seed1"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4')  # cut off mid-write
    (adapter / "adapter_model.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(ValueError, match=f"adapter {adapter}.*rerun the finetune rule"):
        local.load(Endpoint(f"local/{embedded_model}", adapter=str(adapter)))
    assert (adapter / "adapter_model.safetensors").exists(), "nothing is deleted"


def test_unknown_provider_names_the_field():
    import copy

    import yaml

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["roles"]["patient"]["model"] = "nosuchprovider/some-model"
    problems = unknown_providers(copy.deepcopy(config))
    assert len(problems) == 1 and problems[0].startswith("config.roles.patient.model: 'nosuchprovider/some-model'")
    config["roles"]["patient"]["model"] = "deepseek/deepseek-chat"
    assert unknown_providers(config) == []
