"""The dashboard at `/`: what a tenant's model has learned and what changed.

One server-rendered page and a small script: the tenant pastes its API key (kept in the
browser tab's sessionStorage, sent as the same Bearer header as any client), then sees its
memories (search, forget), its versions with lineage and gate metrics, quarantine, the audit
log, and the plots of the latest benchmark run. Every number comes from the same JSON
endpoints an API client uses, so the page shows nothing the API would not.
"""

from __future__ import annotations

from pathlib import Path

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lifelong</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d232b;background:#f6f7f9}
header{background:#1d232b;color:#fff;padding:10px 20px;display:flex;gap:16px;align-items:center}
header h1{font-size:17px;margin:0}nav button{background:none;border:0;color:#cfd6df;font-size:14px;padding:6px 10px;cursor:pointer}
nav button.on{color:#fff;border-bottom:2px solid #6cb4ff}main{padding:18px 20px;max-width:1200px}
table{border-collapse:collapse;width:100%;background:#fff}th,td{border-bottom:1px solid #e3e6ea;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#eef1f4;font-weight:600}.muted{color:#6b7580}.bad{color:#b3261e}.good{color:#1e7b34}
input[type=text],input[type=password]{padding:6px 8px;border:1px solid #c5cbd3;border-radius:4px;min-width:280px}
button.act{padding:5px 10px;border:1px solid #c5cbd3;border-radius:4px;background:#fff;cursor:pointer}
section{display:none}section.on{display:block}img{max-width:100%;background:#fff;border:1px solid #e3e6ea;margin:8px 0}
#status{margin-left:auto;font-size:13px}
</style></head><body>
<header><h1>lifelong</h1>
<nav id="tabs"><button data-tab="memories" class="on">Memories</button><button data-tab="versions">Versions</button>
<button data-tab="quarantine">Quarantine</button><button data-tab="audit">Audit</button><button data-tab="bench">Benchmarks</button></nav>
<span id="status" class="muted">not signed in</span></header>
<main>
<div id="login"><p>Paste your API key (from <code>lifelong keys create TENANT</code>); it stays in this tab.</p>
<input id="key" type="password" placeholder="ll-..."> <button class="act" id="signin">Sign in</button> <span id="loginerror" class="bad"></span></div>
<section id="memories" class="on"><p><input id="query" type="text" placeholder="search memories"> <button class="act" id="search">Search</button>
<button class="act" id="all">All</button></p><table id="memorytable"></table></section>
<section id="versions"><p class="muted">Each version's parent, what the gate measured, and its verdict; the active one is marked.</p><table id="versiontable"></table></section>
<section id="quarantine"><p class="muted">Memories held back by the poisoning checks: never answered from nor trained on until approved.</p><table id="quarantinetable"></table></section>
<section id="audit"><p id="auditstate" class="muted"></p><table id="audittable"></table></section>
<section id="bench"><div id="plots" class="muted">no benchmark results found</div></section>
</main>
<script>
const $ = (id) => document.getElementById(id);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
let key = sessionStorage.getItem("lifelong-key") || "";
async function api(path, options = {}) {
  const response = await fetch(path, {...options, headers: {"Authorization": "Bearer " + key, "Content-Type": "application/json"}});
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
  return body;
}
function table(el, head, rows) {
  $(el).innerHTML = "<tr>" + head.map((h) => "<th>" + esc(h) + "</th>").join("") + "</tr>" +
    (rows.length ? rows.join("") : "<tr><td class=muted colspan=" + head.length + ">nothing yet</td></tr>");
}
async function memories(query) {
  const data = (await api("/v1/memories" + (query ? "?query=" + encodeURIComponent(query) : "?limit=500"))).data;
  table("memorytable", ["id", "text", "source", "trust", "status", ""], data.map((m) => "<tr data-id=" + m.id + "><td>#" + m.id +
    "</td><td>" + esc(m.text) + "</td><td>" + esc(m.source) + "</td><td>" + esc(m.trust) + "</td><td>" +
    (m.current ? "current" : "superseded by #" + m.superseded_by) + (m.quarantine && m.quarantine !== "pending" ? ", quarantined" : "") +
    (m.no_train ? ", never trained on" : "") + "</td><td><button class='act forget' data-id=" + m.id + ">Forget</button></td></tr>"));
  document.querySelectorAll("button.forget").forEach((b) => b.onclick = async () => {
    if (!confirm("Forget memory #" + b.dataset.id + " everywhere, weights included?")) return;
    await api("/v1/memories/" + b.dataset.id, {method: "DELETE"}); memories($("query").value);
  });
}
async function versions() {
  const body = await api("/v1/versions");
  table("versiontable", ["version", "parent", "kind", "memories", "gate metrics", "verdict"], body.data.reverse().map((v) =>
    "<tr class=version><td>" + esc(v.id) + (v.active ? " <b>(active)</b>" : "") + "</td><td>" + esc(v.parent || "base") + "</td><td>" +
    esc(v.kind) + "</td><td>" + v.memory_ids.length + "</td><td>" + Object.entries(v.metrics).filter(([, x]) => typeof x === "number")
      .map(([k, x]) => esc(k) + " " + (Number.isInteger(x) ? x : x.toFixed(3))).join("<br>") + "</td><td class=" +
    (v.verdict.passed ? "good>promoted" : "bad>refused: " + esc(v.verdict.reasons.join("; "))) + "</td></tr>"));
}
async function quarantine() {
  const data = (await api("/v1/quarantine")).data;
  table("quarantinetable", ["id", "text", "source", "why"], data.map((m) => "<tr><td>#" + m.id + "</td><td>" + esc(m.text) +
    "</td><td>" + esc(m.source) + " (" + esc(m.trust) + ")</td><td>" + esc(m.quarantine) + "</td></tr>"));
}
async function audit() {
  const body = await api("/v1/audit");
  $("auditstate").innerHTML = body.intact ? "<span class=good>hash chain intact</span>" : "<span class=bad>chain broken: " + esc(body.problems.join("; ")) + "</span>";
  table("audittable", ["time", "event", "actor", "details"], body.data.reverse().map((e) => "<tr><td>" +
    new Date(e.time * 1000).toISOString().replace("T", " ").slice(0, 19) + "</td><td>" + esc(e.event) + "</td><td>" + esc(e.actor) +
    "</td><td>" + esc(JSON.stringify(Object.fromEntries(Object.entries(e).filter(([k]) => !["time", "event", "actor", "prev"].includes(k))))) + "</td></tr>"));
}
async function bench() {
  const data = (await (await fetch("/v1/plots")).json()).data;
  if (data.length) $("plots").innerHTML = data.map((p) => "<h3>" + esc(p.study) + " <span class=muted>" + esc(p.run) + "</span></h3><img alt='" +
    esc(p.study + " " + p.file) + "' src='" + esc(p.url) + "'>").join("");
}
const loaders = {memories: () => memories($("query").value), versions, quarantine, audit, bench};
async function show(tab) {
  document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("on", b.dataset.tab === tab));
  document.querySelectorAll("section").forEach((s) => s.classList.toggle("on", s.id === tab));
  try { await loaders[tab](); } catch (error) { $("status").textContent = error.message; }
}
async function signin() {
  try {
    const models = await api("/v1/models");
    $("status").textContent = "tenant " + models.data[0].owned_by + ", active version " + models.data[0].active_version;
    $("login").style.display = "none"; sessionStorage.setItem("lifelong-key", key); show("memories");
  } catch (error) { $("loginerror").textContent = error.message; }
}
$("signin").onclick = () => { key = $("key").value.trim(); signin(); };
$("search").onclick = () => memories($("query").value);
$("all").onclick = () => { $("query").value = ""; memories(""); };
document.querySelectorAll("nav button").forEach((b) => b.onclick = () => show(b.dataset.tab));
if (key) signin();
</script></body></html>
"""


def latest_plots(results: Path) -> list[dict[str, str]]:
    """The PNGs of each study's latest run under a `lifelong bench` results folder."""
    plots = []
    for study in sorted(p for p in results.glob("*") if p.is_dir()) if results.is_dir() else []:
        runs = sorted(p for p in study.iterdir() if p.is_dir() and (p / "results.json").is_file())
        if runs:
            for image in sorted(runs[-1].glob("*.png")):
                plots.append({"study": study.name, "run": runs[-1].name, "file": image.name,
                              "url": f"/plots/{study.name}/{runs[-1].name}/{image.name}"})
    return plots
