import pytest
from workspace import ROOT

from cbtflow.data.profiles import ProfileError, load_attributes, profile_hash, sample_splits


@pytest.fixture(scope="module")
def attrs(root=None):
    from pathlib import Path

    return load_attributes(Path(__file__).resolve().parents[1] / "resources/profiles/attributes.yaml")


def _allowed(attrs, key, name):
    return next(o["age_bands"] for o in attrs[key] if o["name"] == name)


def test_thousand_profiles_are_coherent_and_disjoint(attrs):
    splits = sample_splits(attrs, 600, 400, seed=3, eval_risk=True)
    train, evals = splits["train"], splits["eval"]
    assert len(train) == 600 and len(evals) == 400
    assert not ({p["hash"] for p in train} & {p["hash"] for p in evals})
    for p in train + evals:
        assert p["age_band"] in _allowed(attrs, "occupations", p["occupation"])
        assert p["age_band"] in _allowed(attrs, "living_situations", p["living_situation"])
        assert not (p["occupation"] == "retired" and p["age_band"] != "65+")
        assert not (p["occupation"] == "university student" and p["age_band"] in {"55-64", "65+"})
        assert p["name"] in attrs["first_names"][p["gender"]]
        assert profile_hash(p) == p["hash"]
    assert all(p["risk_level"] == "none" for p in train), "training courses hold no crisis examples"
    assert any(p["risk_level"] == "passive ideation" for p in evals)


def test_sampling_is_seeded_and_eval_count_leaves_train_alone(attrs):
    a = sample_splits(attrs, 5, 3, seed=11)
    b = sample_splits(attrs, 5, 4, seed=11)
    assert a["train"] == b["train"]
    assert a["eval"] == b["eval"][:3]
    assert sample_splits(attrs, 5, 3, seed=12)["train"] != a["train"]


def test_impossible_request_fails_with_the_field(attrs):
    tiny = dict(
        attrs,
        age_bands=["65+"],
        occupations=[{"name": "retired", "age_bands": ["65+"]}],
        living_situations=[{"name": "lives alone", "age_bands": ["65+"]}],
        genders=["woman"],
        first_names={"woman": ["Olga"]},
        presenting_problems=attrs["presenting_problems"][:1],
        phq9_bands=attrs["phq9_bands"][:1],
        cultures=["Irish"],
        distortions=["labelling", "mind reading"],
        emotions=["sadness", "guilt"],
        safety_behaviours=["staying in bed", "avoiding friends"],
        strengths=["persistence", "curiosity"],
        supports=["a neighbour"],
        histories=["no previous treatment"],
        attitudes=["cooperative"],
    )
    with pytest.raises(ProfileError, match="profiles.train"):
        sample_splits(tiny, 50, 0, seed=1)


def _paper_profiles():
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((root / "experiments/paper.yaml").read_text())["profiles"]
    return config, load_attributes(root / "resources/profiles/attributes.yaml")


def test_every_belief_and_thought_string_is_distinct_in_the_data(attrs):
    from cbtflow.data.profiles import conceptualisations

    strings = [
        s
        for _, v in conceptualisations(attrs)
        for s in [v["core_belief"], *v["intermediate_beliefs"], *v["automatic_thoughts"]]
    ]
    assert len(strings) == len(set(strings)), "a repeated string would leak across a held-out split"
    assert len(conceptualisations(attrs)) >= 24


@pytest.mark.parametrize("seed", [0, 7, 2024])
def test_held_out_eval_profiles_share_no_belief_string_with_training(seed):
    from cbtflow.data.profiles import belief_strings

    config, attrs = _paper_profiles()
    assert config.get("eval_split", "held_out") == "held_out"
    splits = sample_splits(attrs, config["train"], config["eval"], seed=seed, eval_risk=config.get("eval_risk", False))
    assert len(splits["train"]) == 58 and len(splits["eval"]) >= 33
    trained = set().union(*(belief_strings(p) for p in splits["train"]))
    for p in splits["eval"]:
        assert p["eval_split"] == "held_out"
        assert not belief_strings(p) & trained, p["id"]
        for other in splits["train"]:  # no substring either: the patient prompt quotes them
            for s in belief_strings(p):
                assert s not in other["vignette"]


def test_in_distribution_and_both_splits():
    from cbtflow.data.profiles import belief_strings

    config, attrs = _paper_profiles()
    same = sample_splits(attrs, 58, 33, seed=1, eval_split="in_distribution")
    trained = set().union(*(belief_strings(p) for p in same["train"]))
    assert any(belief_strings(p) & trained for p in same["eval"]), "the study's setting shares beliefs"
    both = sample_splits(attrs, 58, 33, seed=1, eval_split="both")
    tags = [p["eval_split"] for p in both["eval"]]
    assert tags.count("held_out") == 17 and tags.count("in_distribution") == 16
    trained = set().union(*(belief_strings(p) for p in both["train"]))
    assert all(not belief_strings(p) & trained for p in both["eval"] if p["eval_split"] == "held_out")
    assert all(belief_strings(p) & trained for p in both["eval"] if p["eval_split"] == "in_distribution")
    assert sample_splits(attrs, 58, 33, seed=1, eval_split="held_out")["train"] == both["train"]
    with pytest.raises(ProfileError, match="profiles.eval_split"):
        sample_splits(attrs, 5, 3, seed=1, eval_split="sideways")


def test_eval_profiles_take_the_configured_styles_in_turn():
    from cbtflow.data.profiles import assign_styles, load_styles

    styles = load_styles(ROOT / "resources/profiles/styles.yaml")
    assert list(styles) == ["plain", "upset", "verbose", "reserved", "tangent", "pleasing"]
    assert styles["plain"] == "" and all(styles[s] for s in styles if s != "plain")
    splits = sample_splits(load_attributes(ROOT / "resources/profiles/attributes.yaml"), 2, 7, seed=3)
    before = [p["hash"] for p in splits["eval"]]
    assign_styles(splits["eval"], ["upset", "reserved", "plain"], styles)
    assert [p["style"] for p in splits["eval"]] == ["upset", "reserved", "plain"] * 2 + ["upset"]
    assert all(p["style_prompt"] == styles[p["style"]] for p in splits["eval"])
    assert all(a != p["hash"] for a, p in zip(before, splits["eval"])), "a profile's hash covers its style"
    from cbtflow import prompts

    template = ROOT / "resources/prompts/patient_system.j2"
    upset = prompts.render(template, p=splits["eval"][0], summary="")
    assert styles["upset"] in upset
    assert styles["upset"] not in prompts.render(template, p=splits["train"][0], summary=""), "train: no style"
    with pytest.raises(ProfileError, match="profiles.styles: \\['shy'\\]"):
        assign_styles(splits["eval"], ["shy"], styles)
