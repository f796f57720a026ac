"""The static page :mod:`cutq.worker.report` fills in: ``__TITLE__`` and ``__DATA__`` (JSON).

Filters live in the URL's fragment (``#fail``, ``#failed``, ``#flagged``, ``#flag=edge``,
``#all``): the buttons set it, so a filtered view can be bookmarked or sent to someone.
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
h1 { font-size: 18px; margin: 0 0 6px; }
#summary { color: #555; margin-bottom: 6px; }
nav button { margin: 2px 4px 2px 0; padding: 3px 10px; border: 1px solid #bbb;
  border-radius: 12px; background: #fff; cursor: pointer; }
nav button.on { background: #222; color: #fff; border-color: #222; }
main { padding: 8px 16px; }
.job { display: flex; gap: 12px; align-items: flex-start; background: #fff;
  border: 1px solid #e3e3e3; border-radius: 6px; padding: 8px; margin-bottom: 8px; }
.job.bad { border-color: #d33; }
.meta { width: 220px; flex: none; word-break: break-all; }
.meta .id { color: #888; font-size: 12px; }
figure { margin: 0; width: 170px; }
figcaption { font-size: 12px; }
.pic { width: 160px; height: 160px; display: flex; align-items: center;
  justify-content: center; border: 1px solid #eee; }
.pic img { max-width: 160px; max-height: 160px; }
.checker { background: repeating-conic-gradient(#ddd 0% 25%, #fff 0% 50%) 0 0 / 16px 16px; }
.pass { color: #080; font-weight: 600; }
.fail { color: #c00; font-weight: 600; }
.flag { display: inline-block; background: #fe9; border-radius: 8px; padding: 0 6px;
  margin: 1px 2px 1px 0; font-size: 12px; }
.rule { color: #c00; font-size: 12px; }
.missing { color: #999; font-size: 12px; }
#more { margin: 12px 0 40px; color: #777; }
</style>
</head>
<body>
<header>
<h1>__TITLE__</h1>
<div id="summary"></div>
<nav id="filters"></nav>
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
    if (key === "class") node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
  }
  return node;
}

function failing(job) { return job.outputs.some(o => o.verdict === "fail"); }

const FILTERS = [["all", "all", () => true],
  ["fail", "verdict fail", failing],
  ["failed", "job failed", j => j.status === "failed"],
  ["flagged", "any flag", j => j.flags.length > 0]]
  .concat(DATA.flags.map(f => ["flag=" + f, "flag: " + f, j => j.flags.includes(f)]));

function current() {
  const key = decodeURIComponent(location.hash.replace(/^#/, "")) || "all";
  return FILTERS.find(f => f[0] === key) || FILTERS[0];
}

function picture(src, checker, alt) {
  const box = el("div", {class: checker ? "pic checker" : "pic"});
  box.append(src ? el("img", {src: src, loading: "lazy", alt: alt})
                 : el("span", {class: "missing"}, "no picture"));
  return box;
}

function row(job) {
  const meta = el("div", {class: "meta"},
    el("div", null, el("strong", null, job.name)),
    el("div", {class: "id"}, job.job_id),
    job.status === "failed" ? el("div", {class: "fail"}, job.error || "failed") : null,
    el("div", null, ...job.flags.map(f => el("span", {class: "flag"}, f))),
    el("div", {class: "id"}, job.total_ms == null ? "" :
      "total " + Math.round(job.total_ms) + " ms · model " + Math.round(job.infer_ms || 0) +
      " ms" + (job.duplicate ? " · already done" : "")));
  const node = el("div", {class: failing(job) || job.status === "failed" ? "job bad" : "job",
                          "data-job": job.job_id}, meta,
    el("figure", null, picture(job.input, false, "input"), el("figcaption", null, "input")));
  for (const out of job.outputs) {
    const caption = el("figcaption", null, el("strong", null, out.name),
      out.verdict ? el("span", {class: out.verdict}, " " + out.verdict) : null,
      el("div", {class: "id"}, (out.width || "?") + "×" + (out.height || "?") +
        (out.fill == null ? "" : " · fill " + (100 * out.fill).toFixed(1) + "%") +
        (out.purity == null ? "" : " · purity " + (100 * out.purity).toFixed(1) + "%")),
      ...out.failed.map(rule => el("div", {class: "rule"}, rule)));
    node.append(el("figure", null, picture(out.thumb, out.checker, out.name), caption));
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
  const [key, , test] = current();
  shown = DATA.jobs.filter(test);
  rendered = 0;
  document.getElementById("jobs").replaceChildren();
  for (const button of document.querySelectorAll("nav button")) {
    button.classList.toggle("on", button.dataset.key === key);
  }
  more();
}

function setup() {
  const jobs = DATA.jobs;
  const fails = jobs.filter(failing).length;
  const broken = jobs.filter(j => j.status === "failed").length;
  const totals = jobs.map(j => j.total_ms).filter(t => t != null).sort((a, b) => a - b);
  const p = q => totals.length ? Math.round(totals[Math.floor(q * (totals.length - 1))]) : 0;
  document.getElementById("summary").textContent = jobs.length + " job(s) · " + fails +
    " with a failing verdict · " + broken + " failed · " +
    jobs.filter(j => j.flags.length).length + " flagged · time per job p50 " + p(0.5) +
    " ms, p95 " + p(0.95) + " ms";
  const nav = document.getElementById("filters");
  for (const [key, label, test] of FILTERS) {
    const button = el("button", {"data-key": key, type: "button"},
                      label + " (" + jobs.filter(test).length + ")");
    button.addEventListener("click", () => { location.hash = key; });
    nav.append(button);
  }
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
