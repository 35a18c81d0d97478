// The page at /: a client of this server's own API (same routes, limits and API key); no other origin.
// Text from the model or the corpus is put in the page with textContent only, never as HTML.
"use strict";

const KEY = "domainlm-api-key";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function showError(message) {
  const box = document.getElementById("error");
  box.replaceChildren(el("strong", { text: "Error: " }), message);
  box.hidden = !message;
}

async function api(method, path, body) {
  const headers = { "content-type": "application/json" };
  const key = sessionStorage.getItem(KEY);
  if (key) headers.authorization = "Bearer " + key;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await res.json().catch(() => ({ error: res.statusText }));
  if (res.status === 401) document.getElementById("key-box").hidden = false;
  if (!res.ok) throw new Error(`${res.status}: ${data.error || res.statusText}`);
  return data;
}

function scoreTable(rows, columns) {
  // rows: [{cells: [...], score}] -> a table with a bar per row
  // bars are scaled to the best row, so small probabilities (a 30k vocabulary) still read
  const head = el("tr", {}, ...columns.map((c) => el("th", { text: c })), el("th", { text: "score" }), el("th"));
  const best = Math.max(1e-12, ...rows.map((r) => r.score));
  const body = rows.map((r) => {
    const bar = el("div", { class: "bar" });
    bar.style.width = `${Math.max(0, Math.min(1, r.score / best)) * 100}%`;
    return el("tr", {}, ...r.cells.map((c) => el("td", { text: String(c) })),
      el("td", { class: "num", text: r.score.toFixed(3) }), el("td", { class: "barcell" }, bar));
  });
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
}

// one tool per kind of model: a form, the request it sends, and how its answer is drawn
const TOOLS = {
  "fill-mask": (info) => ({
    title: "Fill the mask",
    hint: `Write a sentence with ${info.mask_token} where a word is missing.`,
    value: info.example || `The ${info.mask_token} shall be elected.`,
    button: "Fill the mask",
    request: (text) => ["/fill-mask", { inputs: text, top_k: 5 }],
    answer: (items) => scoreTable(items.map((d, i) => ({ cells: [i + 1, d.token_str], score: d.score })), ["#", "token"]),
  }),
  classify: (info) => ({
    title: "Classify a text",
    hint: `Labels: ${info.labels.join(", ")}.`,
    value: "",
    button: "Classify",
    request: (text) => ["/predict", { inputs: text }],
    answer: (scores) => scoreTable(scores.map((d) => ({ cells: [d.label], score: d.score })), ["label"]),
  }),
  generate: () => ({
    title: "Continue a text",
    hint: "Greedy decoding, up to 32 new tokens.",
    value: "",
    button: "Generate",
    request: (text) => ["/generate", { inputs: text, parameters: { max_new_tokens: 32 } }],
    answer: (out) => el("div", { class: "generated", text: out.generated_text }),
  }),
  search: () => ({
    title: "Search the corpus",
    hint: "Documents of the run's corpus nearest to your text (cosine of mean-pooled embeddings).",
    value: "",
    button: "Search",
    request: (text) => ["/search", { inputs: text, top_k: 5 }],
    answer: (hits) => el("div", {}, ...hits.map((h) => el("div", { class: "hit" },
      el("div", { class: "meta", text: `similarity ${h.score.toFixed(4)} · document ${h.id}` }), el("div", { text: h.text })))),
  }),
};

function toolCard(name, spec) {
  const input = el("textarea", { id: `${name}-input`, "aria-label": spec.title });
  input.value = spec.value;
  const button = el("button", { type: "submit", id: `${name}-submit`, text: spec.button });
  const answer = el("div", { class: "answer", id: `${name}-answer`, "aria-live": "polite" });
  const form = el("form", {}, input, el("div", { class: "row" }, button));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    showError("");
    try {
      const [path, body] = spec.request(input.value);
      answer.replaceChildren(spec.answer(await api("POST", path, body)));
    } catch (err) {
      showError(err.message);
    } finally {
      button.disabled = false;
    }
  });
  return el("section", { class: "card", id: `tool-${name}` },
    el("h2", { text: spec.title }), el("p", { class: "muted", text: spec.hint }), form, answer);
}

// a small Markdown subset for the model card: headings, lists, paragraphs, code, **bold**, `code`
function inline(text) {
  const out = [];
  const re = /(\*\*[^*]+\*\*|`[^`]+`|\[[^\]]+\]\([^)]+\))/g;
  let last = 0;
  for (const m of text.matchAll(re)) {
    out.push(text.slice(last, m.index));
    const t = m[0];
    if (t.startsWith("**")) out.push(el("strong", { text: t.slice(2, -2) }));
    else if (t.startsWith("`")) out.push(el("code", { text: t.slice(1, -1) }));
    else out.push(t.slice(1, t.indexOf("]")));  // a link's text only: the page opens nothing else
    last = m.index + t.length;
  }
  out.push(text.slice(last));
  return out;
}

function markdown(src) {
  const root = el("div");
  let list = null, para = null, code = null;
  for (const line of src.split("\n")) {
    if (code !== null) {
      if (line.startsWith("```")) { root.append(el("pre", { text: code.join("\n") })); code = null; }
      else code.push(line);
      continue;
    }
    if (line.startsWith("```")) { code = []; list = para = null; continue; }
    const h = /^(#{1,4})\s+(.*)$/.exec(line);
    const li = /^\s*[-*]\s+(.*)$/.exec(line);
    if (h) { root.append(el(`h${Math.min(4, h[1].length + 1)}`, {}, ...inline(h[2]))); list = para = null; }
    else if (li) { if (!list) { list = el("ul"); root.append(list); } list.append(el("li", {}, ...inline(li[1]))); para = null; }
    else if (!line.trim()) { list = para = null; }
    else { if (!para) { para = el("p"); root.append(para); } else para.append(" "); para.append(...inline(line)); list = null; }
  }
  return root;
}

function metricsTables(metrics) {
  const box = el("div");
  for (const [file, values] of Object.entries(metrics)) {
    const rows = Object.entries(values).map(([k, v]) =>
      el("tr", {}, el("td", { text: k }), el("td", { class: "num", text: typeof v === "number" && !Number.isInteger(v) ? v.toPrecision(4) : String(v) })));
    box.append(el("h3", {}, el("code", { text: file })), el("table", {}, el("tbody", {}, ...rows)));
  }
  return box;
}

async function load() {
  let info;
  try {
    info = await api("GET", "/card");
  } catch (err) {
    showError(err.message);
    return;
  }
  showError("");
  document.title = `domainlm: ${info.model_id}`;
  document.getElementById("title").textContent = info.model_id;
  document.getElementById("subtitle").replaceChildren(
    el("span", { class: "badge", text: info.task }), el("span", { class: "badge", text: info.backend }));
  const names = [info.task, ...(info.search ? ["search"] : [])].filter((n) => n in TOOLS);
  document.getElementById("tools").replaceChildren(...names.map((n) => toolCard(n, TOOLS[n](info))));
  if (info.card) {
    document.getElementById("card").replaceChildren(markdown(info.card));
    document.getElementById("card-box").hidden = false;
  }
  if (Object.keys(info.metrics).length) {
    document.getElementById("metrics").replaceChildren(metricsTables(info.metrics));
    document.getElementById("metrics-box").hidden = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, document.getElementById("key").value.trim());
    document.getElementById("key-box").hidden = true;
    load();
  });
  load();
});
