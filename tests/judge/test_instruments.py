"""Instruments are data (judging.instrument): a packaged name or a rubric file, whose own
fields frame the judge prompts; a lexicon and a safety item only where the file has them."""

import copy

import pytest
import yaml
from workspace import ROOT

from cbtflow import prompts
from cbtflow.config import ConfigError, instrument, validate_config
from cbtflow.instrument import instrument_file, load_rubric
from cbtflow.layout import judge_files
from cbtflow.validation.perturb import load_perturbations

DEFAULT = yaml.safe_load((ROOT / "config.yaml").read_text())


def with_instrument(name, **judging):
    config = copy.deepcopy(DEFAULT)
    config["judging"] = {"instrument": name, **judging}
    return config


def test_a_packaged_name_or_a_path_names_the_instrument_and_its_default_variant():
    assert instrument_file("ctrs") == "resources/ctrs/ctrs.yaml"
    assert instrument_file("my/rubric.yaml") == "my/rubric.yaml"
    config = with_instrument("ctrs")
    validate_config(config)
    assert config["judging"]["rubric_variant"] == "ctrs-modified", "the CTRS file's default_variant"
    skills = with_instrument("skills")
    del skills["judges"]["lexicon"]
    skills["report"]["primary_judge"] = "smollm2"
    validate_config(skills)
    path, rubric = instrument(skills)
    assert path == "resources/skills/skills.yaml" and rubric["scale"] == {"min": 0, "max": 4}
    assert judge_files(skills, "smollm2")["rubric"] == path


def test_the_lexicon_judge_and_risk_profiles_need_what_the_instrument_has():
    config = with_instrument("skills")  # no lexicon, no safety item
    config["profiles"]["eval_risk"] = True
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    assert "config.judges.lexicon: the lexicon kind counts an instrument's lexicon" in str(err.value)
    assert "config.profiles.eval_risk: the instrument resources/skills/skills.yaml has no safety item" in str(err.value)
    with pytest.raises(ConfigError, match=r"config.judging.instrument: .*nosuch"):
        validate_config(with_instrument("nosuch"))
    with pytest.raises(ConfigError, match="config.judging.rubric_variant: .* has no variant 'ctrs-modified'"):
        validate_config(with_instrument("skills", rubric_variant="ctrs-modified"))


def test_prompts_render_the_instruments_own_name_and_items():
    ctrs = load_rubric(ROOT / "resources/ctrs/ctrs.yaml", "ctrs-modified")
    skills = load_rubric(ROOT / "resources/skills/skills.yaml")
    for rubric, title, rater in (
        (ctrs, "the Cognitive Therapy Rating Scale", "CBT supervisor"),
        (skills, "a short scale of general therapeutic skills", "clinical supervisor"),
    ):
        text = prompts.render(ROOT / "resources/prompts/judge_all.j2", transcript="T", rubric=rubric)
        assert f"You are an expert {rater} rating" in text and title in text
        assert all(f"- {item['id']} ({item['name']})" in text for item in rubric["items"])
    item = skills["items"][0]
    text = prompts.render(
        ROOT / "resources/prompts/judge_item.j2", transcript="T", item=item, scale=skills["scale"], rubric=skills
    )
    assert "general therapeutic skill in talking therapy" in text and "from 0 to 4" in text
    assert "Cognitive Therapy" not in text and "CBT" not in text


def test_an_instrument_maps_the_targeted_perturbations_to_its_own_items():
    skills = load_rubric(ROOT / "resources/skills/skills.yaml")
    items = [i["id"] for i in skills["items"]]
    entries = load_perturbations(items=items, lowers=skills["perturbations"])
    targeted = {e["name"]: e["lowers"] for e in entries if e["kind"] == "targeted"}
    assert targeted == skills["perturbations"], "only the mapped targeted perturbations, lowering its items"
    assert {e["name"] for e in entries if e["kind"] == "invariance"} == {
        "filler_padding",
        "speaker_labels",
        "whitespace",
    }
    with pytest.raises(ValueError, match="not in the rubric"):
        load_perturbations(items=items)  # the CTRS targets are not its items
