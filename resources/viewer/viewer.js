// cbtflow's transcript viewer: plain JavaScript, no libraries, no network. The data is the
// JSON block the report rule embeds in this page (cbtflow/viewer.py). The state lives in the
// URL hash, so report.md can link to a filtered list or to one side-by-side pair.
"use strict";
const DATA = JSON.parse(document.getElementById("viewer-data").textContent);
const COURSES = DATA.sessions.some((s) => s.session > 1);  // simulation.sessions > 1
const FILTERS = ["model", "condition", "seed", "profile", "style", ...(COURSES ? ["session"] : [])];
const fmt = (x, digits = 2) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits).replace(/\.?0+$/, ""));

function readState() {
  const state = Object.fromEntries(new URLSearchParams(location.hash.slice(1)));
  if (!state.judge || !DATA.judges.includes(state.judge)) state.judge = DATA.primary_judge || DATA.judges[0] || "";
  return state;
}
function writeState(state) {
  const kept = Object.entries(state).filter(([, v]) => v !== "" && v !== undefined);
  location.hash = new URLSearchParams(kept).toString();
}
const values = (key) => [...new Set(DATA.sessions.map((s) => String(s[key])))].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));

function renderFilters(state) {
  const form = document.getElementById("filters");
  form.replaceChildren();
  for (const key of [...FILTERS, "judge"]) {
    const options = key === "judge" ? DATA.judges : values(key);
    const select = $("select", { id: `filter-${key}`, name: key, onchange: (e) => writeState({ ...readState(), [key]: e.target.value }) },
      key === "judge" ? [] : [$("option", { value: "" }, "all")],
      options.map((v) => $("option", { value: v }, v)));
    select.value = state[key] || (key === "judge" ? state.judge : "");
    form.append($("label", {}, key === "judge" ? "scores by judge" : key, select));
  }
  if (DATA.cards && DATA.cards[state.judge]) {
    form.append($("button", { id: "show-card", type: "button", onclick: () => writeState({ ...readState(), card: readState().judge, view: "", compare: "" }) },
      `judge card (${DATA.cards[state.judge].passed ? "passed" : "FAILED"})`));
  }
}
const matches = (session, state) => FILTERS.every((key) => !state[key] || String(session[key]) === state[key]);
const scoreOf = (session, judge) => (session.scores[judge] || {}).total;

function renderList(state) {
  const shown = DATA.sessions.filter((s) => matches(s, state));
  const rows = shown.map((s) => $("tr", {
    class: "row" + (state.view === s.id ? " selected" : ""), "data-id": s.id,
    onclick: () => writeState({ ...readState(), view: s.id, compare: "", card: "", course: "" }),
  }, $("td", {}, s.model), $("td", {}, s.condition), $("td", {}, s.seed), $("td", {}, s.profile),
     COURSES ? $("td", {}, s.session) : [], $("td", { class: "score" }, fmt(scoreOf(s, state.judge)))));
  const header = ["model", "condition", "seed", "profile", ...(COURSES ? ["session"] : []), `total (${state.judge})`];
  document.getElementById("list").replaceChildren(
    $("p", { class: "count", id: "count" }, `${shown.length} of ${DATA.sessions.length} transcripts`),
    $("table", {}, $("thead", {}, $("tr", {}, header.map((h) => $("th", {}, h)))),
      $("tbody", {}, rows)));
}

// A lexicon judge's reason is its feature counts (a heuristic, labelled as one above).
const features = (counts) => (counts ? "features: " + Object.entries(counts).map(([k, v]) => `${k} ${fmt(v)}`).join(", ") : "");

function itemTable(scores) {
  if (!scores) return $("p", { class: "hint" }, "not scored by this judge");
  const rows = DATA.items.map((item) => {
    const entry = (scores.items || {})[item.id] || {};
    return $("tr", { "data-item": item.id }, $("td", {}, item.name), $("td", { class: "score" }, fmt(entry.score)),
      $("td", {}, entry.justification || entry.evidence || features(entry.features) ||
        (entry.score_token_mass !== undefined ? `expected score over the digits; digit mass ${fmt(entry.score_token_mass)}` : "")));
  });
  // Course items (from a later session): scored apart from the total, or not applicable yet.
  const courseRows = (DATA.course_items || []).map((item) => {
    const entry = (scores.course_items || {})[item.id];
    const na = (scores.not_applicable || []).includes(item.id);
    return $("tr", { "data-course-item": item.id, class: "course-item" }, $("td", {}, `${item.name} (course item, not in the total)`),
      $("td", { class: "score" }, na ? "n/a" : fmt(entry && entry.score)),
      $("td", {}, na ? `not applicable before session ${item.from}` : features(entry && entry.features)));
  });
  return $("table", { class: "items" },
    $("thead", {}, $("tr", {}, $("th", {}, "item"), $("th", {}, `score (${DATA.scale.min}-${DATA.scale.max})`), $("th", {}, "justification or evidence"))),
    $("tbody", {}, rows, courseRows));
}

// What a later session of a course carried: the therapist's memory and the patient's week.
function courseNote(session) {
  if (!session.memory) return [];
  const m = session.memory, p = session.patient_state || {}, c = session.continuity || {};
  const homework = p.agreed ? `agreed: "${p.agreed}"; ${p.homework_done ? "done" : "not done"}` : "no homework was agreed";
  return $("div", { class: "course", "data-session": session.session },
    $("div", { class: "memory" }, `Therapist memory (${m.mode}, from session ${m.written_after_session}): `,
      m.text ? $("q", {}, m.text) : m.history_turns ? `${m.history_turns} earlier turns re-sent` : "none"),
    $("div", { class: "state" }, `Patient's week: ${homework}; mood ${p.mood}${p.life_event ? `; life event: ${p.life_event}` : ""}`),
    $("div", { class: "continuity" }, `Continuity (heuristic detector): ${c.refers_back ? "refers back to the last session" : "no reference back"}`,
      c.refers_to_homework ? `; reuses the homework's words (${c.homework_words_reused.join(", ")})` : ""));
}

function crisisNote(scores) {
  const crisis = scores && scores.crisis;
  if (!crisis) return null;
  if (!crisis.reached) return $("div", { class: "crisis" }, "Crisis response: the session ended before the therapist replied.");
  const parts = Object.entries(crisis.items || {}).map(([item, v]) => `${item} ${fmt(v.score)}`);
  return $("div", { class: "crisis" }, `Crisis response (${crisis.kind}) to the next two therapist replies: total ${fmt(crisis.total)}; `, parts.join(", "));
}

function sessionView(session, judge) {
  const scores = session.scores[judge];
  const flagsByTurn = {};
  for (const flag of [...(session.role_breaks || []).map((b) => ({ turns: [b.turn], kind: b.kind })), ...((scores && scores.flags) || [])]) {
    for (const turn of flag.turns || []) (flagsByTurn[turn] = flagsByTurn[turn] || []).push(flag.kind || flag.detector);
  }
  const turns = session.turns.map((turn, index) => $("div", { class: `turn ${turn.role}`, "data-turn": index },
    $("div", { class: "who" }, turn.role === "therapist" ? "Therapist" : "Patient", ` · turn ${index + 1}`,
      (flagsByTurn[index] || []).map((kind) => $("span", { class: "flag" }, kind)),
      turn.scripted ? $("span", { class: "flag" }, `scripted disclosure: ${turn.scripted}`) : []),
    $("div", { class: "text" }, turn.text),
    turn.scripted ? crisisNote(scores) || [] : []));
  return $("article", { class: "session", "data-id": session.id, "data-condition": session.condition, "data-session": session.session },
    $("h2", {}, `${session.model} · ${session.condition}${COURSES ? ` · session ${session.session}` : ""}`),
    $("div", { class: "meta" }, `profile ${session.profile} · style ${session.style} · seed ${session.seed} · ended: ${session.ending}`,
      session.failure ? ` (${session.failure})` : "",
      Object.entries(session.runs_as || {}).map(([role, ran]) => ` · ${role} ran in ${ran}`)),
    $("div", { class: "meta total" }, `${judge}: total ${fmt(scores && scores.total)}`, scores && scores.heuristic ? " (heuristic)" : "",
      scores && scores.status !== "scored" ? ` (${scores.status})` : ""),
    courseNote(session), itemTable(scores), $("div", { class: "turns" }, turns));
}

// The judge card: what the judge measures (cbtflow/judge_card.py), before its scores are read.
const interval = (c) => (c && c[0] !== null && c[0] !== undefined ? ` [${fmt(c[0])}, ${fmt(c[1])}]` : "");
function cardView(judge) {
  const card = DATA.cards[judge];
  const cell = (x) => `${fmt(x.estimate)}${interval(x.ci95)}`;
  const sets = Object.entries(card.reference_sets).map(([name, r]) => $("tr", {},
    [name, `${r.statistic} (n ${r.n})`, cell(r.judge), cell(r.length_controlled), cell(r.length_alone)].map((v) => $("td", {}, v))));
  const perturbations = Object.entries(card.perturbations).map(([name, e]) => $("tr", {},
    [name, e.kind, e.lowers.map((i) => `${i} ${fmt(e.items[i].mean)}`).join("; ") || "–", `${fmt(e.total.mean)}${interval(e.total.ci95)}`, e.n_sessions]
      .map((v) => $("td", {}, v))));
  const verdicts = Object.entries(card.verdicts).map(([name, v]) => $("li", { class: v.passed ? "" : "flag" },
    `${name.replace(/_/g, " ")}: ${v.passed ? "passed" : v.required ? "FAILED" : "not met"} (${v.rule})`));
  return $("article", { id: "card" },
    $("h2", {}, `Judge card: ${judge}${card.heuristic ? " (heuristic)" : ""}, ${card.passed ? "passed" : "FAILED"}`),
    $("table", {}, $("thead", {}, $("tr", {}, ["reference set", "statistic", "judge", "length controlled", "length alone"].map((h) => $("th", {}, h)))), $("tbody", {}, sets)),
    $("table", {}, $("thead", {}, $("tr", {}, ["perturbation", "kind", "change of the items it should lower", "change of the total", "sessions"].map((h) => $("th", {}, h)))), $("tbody", {}, perturbations)),
    $("ul", {}, verdicts));
}

const pairKey = (s) => `${s.model}|${s.seed}|${s.profile}` + (s.session > 1 ? `|${s.session}` : "");
const courseKey = (s) => `${s.model}|${s.seed}|${s.profile}`;

// One patient's course as a timeline: a row per session, the conditions side by side,
// with the totals by session above it.
function courseView(key, judge) {
  const course = DATA.sessions.filter((s) => courseKey(s) === key);
  const sessions = [...new Set(course.map((s) => s.session))].sort((a, b) => a - b);
  const conditions = DATA.conditions.filter((c) => course.some((s) => s.condition === c));
  const cell = (n, c) => course.find((s) => s.session === n && s.condition === c);
  const totals = $("table", { class: "timeline-totals" },
    $("thead", {}, $("tr", {}, $("th", {}, `total (${judge})`), sessions.map((n) => $("th", {}, `session ${n}`)))),
    $("tbody", {}, conditions.map((c) => $("tr", {}, $("td", {}, c), sessions.map((n) => $("td", { class: "score" }, fmt(cell(n, c) && scoreOf(cell(n, c), judge))))))));
  const rows = sessions.map((n) => $("div", { class: "pair timeline-row", "data-session": n },
    conditions.map((c) => (cell(n, c) ? sessionView(cell(n, c), judge) : $("p", { class: "hint" }, `${c}: no session ${n}`)))));
  return $("div", { id: "timeline" }, $("h2", {}, `Course of ${key.split("|")[2]} (${key.split("|")[0]}, seed ${key.split("|")[1]})`), totals, rows);
}
function renderDetail(state) {
  const detail = document.getElementById("detail");
  if (state.card && DATA.cards && DATA.cards[state.card]) {
    detail.replaceChildren(cardView(state.card));
    return;
  }
  if (state.course) {
    detail.replaceChildren(courseView(state.course, state.judge));
    return;
  }
  if (state.compare) {
    const pair = DATA.sessions.filter((s) => pairKey(s) === state.compare).sort((a, b) => DATA.conditions.indexOf(a.condition) - DATA.conditions.indexOf(b.condition));
    detail.replaceChildren($("div", { class: "pair", id: "pair" }, pair.map((s) => sessionView(s, state.judge))));
    return;
  }
  const session = DATA.sessions.find((s) => s.id === state.view);
  if (!session) return;
  const compare = $("button", { id: "compare", type: "button", onclick: () => writeState({ ...readState(), compare: pairKey(session), view: "", card: "", course: "" }) },
    "Compare the conditions for this patient and seed");
  const timeline = COURSES ? $("button", { id: "timeline-button", type: "button", onclick: () => writeState({ ...readState(), course: courseKey(session), view: "", compare: "", card: "" }) },
    "Show this patient's course as a timeline") : [];
  detail.replaceChildren(compare, timeline, sessionView(session, state.judge));
}

function render() {
  const state = readState();
  document.getElementById("title").textContent = DATA.title;
  renderFilters(state);
  renderList(state);
  renderDetail(state);
}
window.addEventListener("hashchange", render);
render();
