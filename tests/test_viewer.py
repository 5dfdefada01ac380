"""The viewer page builder: model-written text is data, never markup, and every score
document meets its transcript."""

from __future__ import annotations

import json

import pytest

from cbtflow.instrument import load_rubric
from cbtflow.packaged import DEFAULT_RUBRIC
from cbtflow.report.viewer import render_page, viewer_data, write_viewer

ATTACK = '</script><img src=x onerror="window.pwned=1"><b>bold</b> __DATA__'


def _docs():
    transcript = {
        "model": "m",
        "condition": "cbt",
        "seed": 1,
        "profile_id": "eval-000",
        "style": "plain",
        "ending": "max_turns",
        "turns": [{"role": "therapist", "text": "Hello."}, {"role": "patient", "text": ATTACK}],
    }
    score = {
        "judge": "j",
        "model": "m",
        "condition": "cbt",
        "seed": 1,
        "profile_id": "eval-000",
        "status": "scored",
        "total": 12.5,
        "items": {"agenda": {"score": 2, "justification": ATTACK}},
        "flags": [{"detector": "d", "kind": "degenerate", "turns": [1]}],
    }
    return transcript, score


def test_model_text_stays_data_in_the_page():
    transcript, score = _docs()
    data = viewer_data([transcript], [score], load_rubric(DEFAULT_RUBRIC, "ctrs-modified"), "t")
    page = render_page(data)
    assert "</script><img" not in page and page.count("</script>") == 2, "only the page's own two scripts end"
    embedded = page.split('id="viewer-data">', 1)[1].split("</script>", 1)[0]
    assert json.loads(embedded) == data, "the JSON round-trips, '<\\/' included"


def test_a_score_without_its_transcript_is_an_error_naming_it():
    transcript, score = _docs()
    orphan = {**score, "profile_id": "eval-009"}
    with pytest.raises(ValueError, match="judge j for m/cbt/seed1/eval-009 has no transcript"):
        viewer_data([transcript], [orphan], load_rubric(DEFAULT_RUBRIC, "ctrs-modified"), "t")


def test_the_browser_shows_model_text_literally_and_runs_none_of_it(tmp_path):
    from browser import chrome
    from selenium.webdriver.common.by import By

    transcript, score = _docs()
    page = tmp_path / "index.html"
    write_viewer(page, viewer_data([transcript], [score], load_rubric(DEFAULT_RUBRIC, "ctrs-modified"), "t", "j"))
    with chrome(tmp_path / "chromium") as browser:
        browser.get(page.as_uri() + "#view=m/cbt/seed1/eval-000")
        turns = browser.find_elements(By.CSS_SELECTOR, "article.session .turn")
        assert turns[1].find_element(By.CSS_SELECTOR, ".text").text == ATTACK
        assert "degenerate" in turns[1].find_element(By.CSS_SELECTOR, ".who").text, "the flag sits on its turn"
        assert browser.find_elements(By.CSS_SELECTOR, "article img, article b") == []
        assert browser.execute_script("return window.pwned === undefined")
        row = browser.find_element(By.CSS_SELECTOR, 'table.items tr[data-item="agenda"]')
        assert ATTACK in row.text and "2" in row.find_element(By.CSS_SELECTOR, "td.score").text


def _card():
    from cbtflow.config import with_schema_defaults
    from cbtflow.instrument import item_ids
    from cbtflow.validation.card import build_card
    from cbtflow.validation.perturb import load_perturbations
    from cbtflow.validation.reference_sets import authored_sessions

    items = item_ids(load_rubric(DEFAULT_RUBRIC, "ctrs-modified"))
    constant = lambda ts: [{"items": {i: 3.0 for i in items}, "total": 33.0} for _ in ts]  # noqa: E731
    thresholds = with_schema_defaults({}, "validation", "thresholds")
    sets = {"authored": (authored_sessions(), "binary")}
    return build_card("j", False, sets, load_perturbations(items=items), items, constant, thresholds)


def test_the_page_carries_each_judge_card_without_its_per_transcript_scores():
    transcript, score = _docs()
    card = _card()
    data = viewer_data([transcript], [score], load_rubric(DEFAULT_RUBRIC, "ctrs-modified"), "t", "j", cards=[card])
    assert set(data["cards"]) == {"j"} and "scores" not in data["cards"]["j"]
    assert data["cards"]["j"]["verdicts"] == card["verdicts"] and data["cards"]["j"]["passed"] is False


def test_the_browser_shows_the_judge_card_with_its_verdicts(tmp_path):
    from browser import chrome
    from selenium.webdriver.common.by import By

    transcript, score = _docs()
    page = tmp_path / "index.html"
    data = viewer_data([transcript], [score], load_rubric(DEFAULT_RUBRIC, "ctrs-modified"), "t", "j", cards=[_card()])
    write_viewer(page, data)
    with chrome(tmp_path / "chromium") as browser:
        browser.get(page.as_uri())
        button = browser.find_element(By.ID, "show-card")
        assert "FAILED" in button.text
        button.click()
        card = browser.find_element(By.CSS_SELECTOR, "article#card")
        assert card.find_element(By.TAG_NAME, "h2").text == "Judge card: j, FAILED"
        assert "authored" in card.text and "drop_agenda" in card.text and "discrimination: FAILED" in card.text
        browser.find_element(By.CSS_SELECTOR, "tr.row").click()
        assert browser.find_elements(By.CSS_SELECTOR, "article#card") == [], "a transcript replaces the card"
