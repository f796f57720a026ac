"""The static page :mod:`cutq.worker.review.report` fills in: ``__TITLE__`` and ``__DATA__`` (JSON).

The view, search and sort live in the URL's fragment, so a view can be bookmarked or sent to
someone: ``#review``, ``#fail``, ``#failed``, ``#pass``, ``#passflagged`` (passed but
flagged), ``#flagged``, ``#flag=edge``, ``#all``, then ``&q=<text>`` (name, ref or job id
contain it) and ``&sort=fill|confidence|time|finished|name|ref`` (``run`` order by default).
Rows are rendered a page at a time as the reader scrolls; thumbnails load lazily.
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__ · cutq report</title>
<link rel="icon" href="data:,">
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { position: sticky; top: 0; background: #fff; border-bottom: 1px solid #ddd;
  padding: 10px 16px; z-index: 1; }
h1 { font-size: 18px; margin: 0 0 4px; }
#summary { color: #555; margin-bottom: 4px; }
nav button { margin: 2px 4px 2px 0; padding: 3px 10px; border: 1px solid #bbb;
  border-radius: 12px; background: #fff; cursor: pointer; }
nav button.on { background: #222; color: #fff; border-color: #222; }
#tools { display: flex; gap: 12px; align-items: center; margin-top: 4px; flex-wrap: wrap; }
#tools input { width: 260px; padding: 3px 6px; }
#export { font-weight: 600; }
details { color: #444; font-size: 13px; margin-top: 4px; }
main { padding: 8px 16px; }
.job { display: flex; gap: 12px; align-items: flex-start; background: #fff;
  border: 1px solid #e3e3e3; border-left-width: 5px; border-radius: 6px; padding: 8px;
  margin-bottom: 8px; }
.job.v-fail, .job.v-failed { border-left-color: #d33; }
.job.v-review { border-left-color: #e90; }
.job.v-pass { border-left-color: #2a2; }
.meta { width: 250px; flex: none; word-break: break-word; }
.meta .id { color: #888; font-size: 12px; word-break: break-all; }
.meta .times { color: #888; font-size: 12px; }
.ref { display: inline-block; background: #e8eefc; border-radius: 4px; padding: 0 5px;
  font-size: 12px; margin-left: 4px; }
figure { margin: 0; width: 170px; }
figcaption { font-size: 12px; }
.pic { width: 160px; height: 160px; display: flex; align-items: center;
  justify-content: center; border: 1px solid #eee; }
.pic img { max-width: 160px; max-height: 160px; }
.checker { background: repeating-conic-gradient(#ddd 0% 25%, #fff 0% 50%) 0 0 / 16px 16px; }
.verdict { font-weight: 700; text-transform: uppercase; font-size: 12px; }
.pass { color: #080; } .review { color: #c70; } .fail, .failed { color: #c00; }
.flag { display: inline-block; background: #fe9; border-radius: 8px; padding: 0 6px;
  margin: 1px 2px 1px 0; font-size: 12px; }
.why { font-size: 12px; color: #555; }
.reason { color: #b50; font-size: 12px; }
.fail .reason, .reason.fail { color: #c00; }
.missing { color: #999; font-size: 12px; }
#more { margin: 12px 0 40px; color: #777; }
</style>
</head>
<body>
<header>
<h1>__TITLE__</h1>
<div id="summary"></div>
<nav id="views"></nav>
<div id="tools">
<input id="search" type="search" placeholder="search name, ref or job id" aria-label="search">
<label>sort <select id="sort">
<option value="run">as run</option><option value="fill">fill (smallest first)</option>
<option value="confidence">confidence (lowest first)</option>
<option value="time">time taken (slowest first)</option>
<option value="finished">finished (latest first)</option>
<option value="name">name</option><option value="ref">ref</option></select></label>
<span id="count"></span>
<a id="export" download></a>
</div>
<details><summary>What the flags mean</summary><div id="legend"></div></details>
</header>
<main><div id="jobs"></div><div id="more"></div></main>
<script type="application/json" id="data">__DATA__</script>
<script>
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
const PAGE_ROWS = 100;
let shown = [], rendered = 0;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key === "class") node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
  }
  return node;
}

function state(job) { return job.status === "completed" ? job.verdict : job.status; }

const VIEWS = [["all", "all", () => true],
  ["pass", "pass", j => j.verdict === "pass"],
  ["review", "review", j => j.verdict === "review"],
  ["fail", "fail", j => j.verdict === "fail"],
  ["failed", "job failed", j => j.status === "failed"],
  ["passflagged", "passed but flagged", j => j.verdict === "pass" && j.flags.length > 0],
  ["flagged", "any flag", j => j.flags.length > 0]]
  .concat(Object.keys(DATA.flags).map(f => ["flag=" + f, "flag: " + f,
                                            j => j.flags.includes(f)]));

const last = (a, b) => (a === null || a === undefined) - (b === null || b === undefined);
const SORTS = {
  run: (a, b) => a.i - b.i,
  fill: (a, b) => last(a.fill, b.fill) || a.fill - b.fill || a.i - b.i,
  confidence: (a, b) => last(a.confidence, b.confidence) || a.confidence - b.confidence ||
    a.i - b.i,
  time: (a, b) => last(a.total_ms, b.total_ms) || b.total_ms - a.total_ms || a.i - b.i,
  finished: (a, b) => (b.time || "").localeCompare(a.time || "") || a.i - b.i,
  name: (a, b) => a.name.localeCompare(b.name) || a.i - b.i,
  ref: (a, b) => last(a.ref || null, b.ref || null) || a.ref.localeCompare(b.ref) || a.i - b.i,
};

function parse() {
  const found = {view: "all", q: "", sort: "run"};
  for (const part of location.hash.replace(/^#/, "").split("&")) {
    if (!part) continue;
    const text = decodeURIComponent(part);
    if (text.startsWith("q=")) found.q = text.slice(2);
    else if (text.startsWith("sort=")) found.sort = text.slice(5);
    else found.view = text;
  }
  if (!VIEWS.some(v => v[0] === found.view)) found.view = "all";
  if (!(found.sort in SORTS)) found.sort = "run";
  return found;
}

function go(change) {
  const next = Object.assign(parse(), change);
  let hash = "#" + encodeURIComponent(next.view).replace("%3D", "=");
  if (next.q) hash += "&q=" + encodeURIComponent(next.q);
  if (next.sort !== "run") hash += "&sort=" + next.sort;
  history.replaceState(null, "", hash);
  apply();
}

function picture(thumb, link, checker, alt) {
  const box = el("div", {class: checker ? "pic checker" : "pic"});
  const image = thumb ? el("img", {src: thumb, loading: "lazy", alt: alt})
                      : el("span", {class: "missing"}, "no picture");
  box.append(link ? el("a", {href: link, target: "_blank", title: "open full size"}, image)
                  : image);
  return box;
}

function percent(value) { return (100 * value).toFixed(1) + "%"; }

function row(job) {
  const verdict = state(job);
  const meta = el("div", {class: "meta"},
    el("div", null, el("strong", {class: "name"}, job.name || "(no name)"),
      job.ref ? el("span", {class: "ref", title: "ref"}, job.ref) : null),
    el("div", {class: "id"}, job.job_id),
    verdict ? el("div", {class: "verdict " + verdict}, verdict) : null,
    job.error ? el("div", {class: "failed"}, job.error) : null,
    el("div", null, ...job.flags.map(f => el("span", {class: "flag", title: DATA.flags[f]}, f))),
    ...job.flags.map(f => el("div", {class: "why"}, f + ": " + (DATA.flags[f] || ""))),
    el("div", {class: "times"}, [
      job.confidence == null ? null : "confidence " + percent(job.confidence),
      job.total_ms == null ? null : "total " + Math.round(job.total_ms) + " ms · model " +
        Math.round(job.infer_ms || 0) + " ms",
      job.duplicate ? "already done" : null].filter(Boolean).join(" · ")));
  const node = el("div", {class: "job" + (verdict ? " v-" + verdict : ""),
                          "data-job": job.job_id}, meta,
    el("figure", null, picture(job.thumb, job.href, false, "input"),
       el("figcaption", null, "input ", job.href ? el("a", {href: job.href, target: "_blank"},
                                                      "full size") : null)));
  for (const out of job.outputs) {
    const caption = el("figcaption", null, el("strong", null, out.name),
      out.verdict ? el("span", {class: "verdict " + out.verdict}, " " + out.verdict) : null,
      out.href ? el("span", null, " · ", el("a", {href: out.href, target: "_blank"},
                                           "full size")) : null,
      el("div", {class: "id"}, (out.width || "?") + "×" + (out.height || "?") +
        (out.fill == null ? "" : " · fill " + percent(out.fill)) +
        (out.purity == null ? "" : " · purity " + percent(out.purity))),
      ...out.reasons.map(r => el("div", {class: "reason " + (out.verdict || "")}, r)));
    node.append(el("figure", null, picture(out.thumb, out.href, out.checker, out.name), caption));
  }
  return node;
}

function more() {
  const list = document.getElementById("jobs");
  const end = Math.min(shown.length, rendered + PAGE_ROWS);
  const fragment = document.createDocumentFragment();
  for (; rendered < end; rendered++) fragment.append(row(shown[rendered]));
  list.append(fragment);
  document.getElementById("more").textContent = rendered < shown.length ?
    "showing " + rendered + " of " + shown.length + " (scroll for more)" :
    shown.length + " job(s)";
}

function apply() {
  const {view, q, sort} = parse();
  const test = VIEWS.find(v => v[0] === view)[2];
  const needle = q.trim().toLowerCase();
  shown = DATA.jobs.filter(j => test(j) && (!needle ||
    j.name.toLowerCase().includes(needle) || j.ref.toLowerCase().includes(needle) ||
    j.job_id.toLowerCase().includes(needle)));
  shown.sort(SORTS[sort]);
  rendered = 0;
  document.getElementById("jobs").replaceChildren();
  for (const button of document.querySelectorAll("nav button")) {
    button.classList.toggle("on", button.dataset.key === view);
  }
  const search = document.getElementById("search");
  if (search.value !== q) search.value = q;
  document.getElementById("sort").value = sort;
  document.getElementById("count").textContent = shown.length + " of " + DATA.jobs.length +
    " job(s) in this view";
  more();
}

function setup() {
  const jobs = DATA.jobs;
  const count = key => jobs.filter(VIEWS.find(v => v[0] === key)[2]).length;
  const totals = jobs.map(j => j.total_ms).filter(t => t != null).sort((a, b) => a - b);
  const p = q => totals.length ? Math.round(totals[Math.floor(q * (totals.length - 1))]) : 0;
  document.getElementById("summary").textContent = jobs.length + " job(s): " +
    count("pass") + " pass · " + count("review") + " review · " + count("fail") + " fail · " +
    count("failed") + " failed · " + count("flagged") + " flagged · time per job p50 " +
    p(0.5) + " ms, p95 " + p(0.95) + " ms";
  const nav = document.getElementById("views");
  for (const [key, label, test] of VIEWS) {
    const button = el("button", {"data-key": key, type: "button"},
                      label + " (" + jobs.filter(test).length + ")");
    button.addEventListener("click", () => go({view: key}));
    nav.append(button);
  }
  const legend = document.getElementById("legend");
  for (const [flag, meaning] of Object.entries(DATA.flags)) {
    legend.append(el("div", null, el("span", {class: "flag"}, flag), " " + meaning));
  }
  const exporter = document.getElementById("export");
  exporter.href = DATA.rerun.href;
  exporter.textContent = "export rerun list (" + DATA.rerun.count + " review/fail/failed)";
  exporter.title = "input, ref, name of each row to redo: cutq submit --from-manifest FILE";
  document.getElementById("search").addEventListener("input", e => go({q: e.target.value}));
  document.getElementById("sort").addEventListener("change", e => go({sort: e.target.value}));
  window.addEventListener("hashchange", apply);
  new IntersectionObserver(entries => {
    if (entries.some(e => e.isIntersecting) && rendered < shown.length) more();
  }).observe(document.getElementById("more"));
  apply();
  document.body.dataset.readyMs = Math.round(performance.now());  // for load-time checks
}

setup();
</script>
</body>
</html>
"""
