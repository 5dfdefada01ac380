// cbtflow's rating kit: plain JavaScript, no libraries, no network. The data is the JSON
// block cbtflow.judge.rating_kit embeds: one rater's blinded transcripts and the items with
// their anchors. Ratings autosave in localStorage under the kit's id and the rater, and the
// export is the CSV `cbtflow import-ratings` reads.
"use strict";
const DATA = JSON.parse(document.getElementById("kit-data").textContent);
const STORE = `cbtflow-rating-kit:${DATA.kit}:${DATA.rater}`;
const fresh = () => ({ ratings: {}, t: 0, i: 0 });
function load() {
  try { return JSON.parse(localStorage.getItem(STORE)) || fresh(); } catch (e) { return fresh(); }
}
let state = load();
let shownAt = Date.now();
const items = (t) => (t.safety && DATA.safety ? [...DATA.items, DATA.safety] : DATA.items);
const current = () => DATA.transcripts[state.t];
function rating(t) {
  if (!state.ratings[t.id]) state.ratings[t.id] = { scores: {}, notes: {}, started: new Date().toISOString(), saved: null, seconds: 0 };
  return state.ratings[t.id];
}
const complete = (t) => items(t).every((item) => rating(t).scores[item.id] !== undefined);
function account() {  // seconds spent on the transcript shown, added when it is left or saved
  const now = Date.now();
  rating(current()).seconds += (now - shownAt) / 1000;
  shownAt = now;
}
function save() {
  account();
  localStorage.setItem(STORE, JSON.stringify(state));
}

function render() {
  const t = current(), r = rating(t), list = items(t);
  state.i = Math.min(state.i, list.length - 1);
  const done = DATA.transcripts.filter(complete).length;
  document.getElementById("who").textContent = `${DATA.rater} · ${DATA.title}`;
  document.getElementById("progress").replaceChildren(
    $("span", { id: "progress-text" }, `transcript ${state.t + 1} of ${DATA.transcripts.length} · ${done} complete`),
    $("progress", { max: DATA.transcripts.length, value: done }));
  document.getElementById("transcript").replaceChildren(
    $("h2", { id: "transcript-id", "data-id": t.id }, `Transcript ${t.id}`),
    t.calibration ? $("p", { class: "calibration" }, "Calibration transcript: every rater rates this one.") : [],
    t.turns.map((turn) => $("div", { class: `turn ${turn.who}` }, $("div", { class: "who" }, turn.who === "therapist" ? "Therapist" : "Client"), turn.text)));
  document.getElementById("rubric").replaceChildren(...list.map((item, index) => $("div", {
    class: "item" + (index === state.i ? " current" : ""), "data-item": item.id,
    onclick: (e) => { if (e.target.tagName !== "INPUT") { state.i = index; render(); } },
  },
  $("div", {}, $("strong", {}, item.name), " · score ", $("span", { class: "score" }, r.scores[item.id] ?? "–")),
  $("div", { class: "question" }, item.question),
  $("div", { class: "anchors" }, Object.entries(item.anchors || {}).map(([k, v]) => `${k}: ${v}`).join(" · ")),
  $("input", { class: "note", type: "text", placeholder: "note (optional)", value: r.notes[item.id] || "",
    oninput: (e) => { r.notes[item.id] = e.target.value; r.saved = new Date().toISOString(); save(); } }))));
}

function move(dt) {
  const next = Math.max(0, Math.min(DATA.transcripts.length - 1, state.t + dt));
  if (next === state.t) return;
  save();
  state.t = next; state.i = 0; shownAt = Date.now();
  save(); render();
}
document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT" || e.target.tagName === "TEXTAREA") {
    if (e.key === "Escape") e.target.blur();
    return;
  }
  const t = current(), list = items(t);
  if (/^[0-9]$/.test(e.key)) {
    const score = Number(e.key);
    if (score < DATA.scale.min || score > DATA.scale.max) return;
    const r = rating(t);
    r.scores[list[state.i].id] = score;
    r.saved = new Date().toISOString();
    state.i = Math.min(state.i + 1, list.length - 1);
    save(); render();
  } else if (e.key === "ArrowDown" || e.key === "j") { state.i = Math.min(state.i + 1, list.length - 1); render(); }
  else if (e.key === "ArrowUp" || e.key === "k") { state.i = Math.max(state.i - 1, 0); render(); }
  else if (e.key === "ArrowRight" || e.key === "n") move(1);
  else if (e.key === "ArrowLeft" || e.key === "p") move(-1);
  else return;
  e.preventDefault();
});

// The CSV `cbtflow import-ratings` reads: a complete transcript's row names the rater; an
// incomplete one leaves it empty, so the import skips it as not rated yet.
const cell = (v) => (/[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));
function exportCsv() {
  save();
  const ids = DATA.items.map((i) => i.id);
  const header = ["rating_id", "rater", ...ids, "safety", "kit", "started", "saved", "seconds", ...ids.map((i) => `note_${i}`)];
  const rows = DATA.transcripts.map((t) => {
    const r = rating(t);
    const safety = t.safety && DATA.safety ? (r.scores.safety ?? "") : "n/a";
    return [t.id, complete(t) ? DATA.rater : "", ...ids.map((i) => r.scores[i] ?? ""), safety, DATA.kit, r.started, r.saved || "",
      Math.round(r.seconds), ...ids.map((i) => r.notes[i] || "")];
  });
  const text = [header, ...rows].map((row) => row.map(cell).join(",")).join("\n") + "\n";
  document.getElementById("export-text").value = text;
  const link = document.getElementById("download");
  link.href = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
  link.download = `${DATA.rater}-${DATA.kit}.csv`;
  return text;
}
document.getElementById("export").addEventListener("click", exportCsv);
window.addEventListener("pagehide", save);
render();
