// tessera's web page: uploads, the page's tasks, the cluster, live.
// Plain JavaScript, no library. The master pushes a snapshot at most once a
// second (server-sent events); uploads stream each file from disk.
"use strict";

const UPLOADS_AT_ONCE = 3;
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const STREAM_WINDOW_MS = 120_000;

const $ = (id) => document.getElementById(id);

// One batch per browser tab: a reload keeps it, another tab has its own.
function batchId() {
  let b = sessionStorage.getItem("tessera-batch");
  if (!b) {
    const r = new Uint8Array(12);
    crypto.getRandomValues(r);
    b = "b-" + Array.from(r, (x) => x.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem("tessera-batch", b);
  }
  return b;
}
const BATCH = batchId();

// rows: what the table shows, in order. A row is a file being uploaded
// (or refused before upload), or a task of this batch.
const rows = [];
const byTask = new Map();
const waiting = [];
let uploading = 0;
let lastTasks = [];

function fmtBytes(n) {
  if (n == null) return "";
  if (n < 1024) return n + " B";
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KiB";
  return (n / 1024 / 1024).toFixed(1) + " MiB";
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

// ---- uploads ----

async function isPng(file) {
  const head = new Uint8Array(await file.slice(0, 8).arrayBuffer());
  return head.length === 8 && PNG_SIGNATURE.every((b, i) => head[i] === b);
}

async function addFiles(files) {
  for (const file of files) {
    const name = file.webkitRelativePath || file.name;
    const row = { key: rows.length, name, size: file.size, state: "checking", progress: 0 };
    rows.push(row);
    if (!(await isPng(file))) {
      row.state = "skipped";
      row.reason = "not a PNG (its first bytes are not the PNG signature); not uploaded";
    } else {
      row.state = "waiting";
      waiting.push({ row, file, tries: 0 });
    }
  }
  render();
  pump();
}

function pump() {
  while (uploading < UPLOADS_AT_ONCE && waiting.length > 0) {
    const job = waiting.shift();
    uploading++;
    upload(job).finally(() => {
      uploading--;
      pump();
    });
  }
}

function upload(job) {
  const { row, file } = job;
  row.state = "uploading";
  render();
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    const q = new URLSearchParams({ batch: BATCH, name: row.name });
    xhr.open("POST", "/api/upload?" + q);
    xhr.setRequestHeader("X-Tessera-Request", "1");
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) {
        row.progress = e.loaded / e.total;
        renderRow(row);
      }
    };
    xhr.onload = () => {
      if (xhr.status === 200) {
        const { task } = JSON.parse(xhr.responseText);
        row.task = task;
        row.state = row.state === "uploading" ? "queued" : row.state;
        row.progress = 1;
        byTask.set(task, row);
        applyTasks(lastTasks);
      } else if (xhr.status === 503 && job.tries < 20) {
        // The master is at its limit of uploads: try again later.
        job.tries++;
        row.state = "waiting";
        row.reason = "master busy, retrying";
        const delay = Math.min(10_000, 250 * 2 ** job.tries) * (0.5 + Math.random() / 2);
        setTimeout(() => { waiting.push(job); pump(); }, delay);
      } else {
        row.state = "upload-failed";
        row.reason = xhr.responseText.trim() || "HTTP " + xhr.status;
      }
      render();
      resolve();
    };
    xhr.onerror = () => {
      row.state = "upload-failed";
      row.reason = "the connection to the master was lost";
      render();
      resolve();
    };
    xhr.send(file);
  });
}

// ---- the page's tasks ----

function applyTasks(tasks) {
  lastTasks = tasks;
  for (const t of tasks) {
    let row = byTask.get(t.id);
    if (!row) {
      // Uploaded before a reload of this tab.
      row = { key: rows.length, name: t.name, task: t.id, progress: 1 };
      rows.push(row);
      byTask.set(t.id, row);
    }
    row.state = t.state;
    row.worker = t.worker;
    row.reason = t.reason;
    row.outputLen = t.output_len;
  }
}

async function post(url) {
  const r = await fetch(url, { method: "POST", headers: { "X-Tessera-Request": "1" } });
  if (!r.ok) throw new Error((await r.text()).trim());
  return r.json();
}

async function cancelTask(row) {
  try {
    const view = await post(`/api/tasks/${row.task}/cancel`);
    applyTasks(lastTasks.map((t) => (t.id === view.id ? view : t)));
  } catch (e) {
    row.reason = "cannot cancel: " + e.message;
  }
  render();
}

function stateText(row) {
  switch (row.state) {
    case "running": return "running";
    case "upload-failed": return "upload failed";
    default: return row.state;
  }
}

function renderRow(row) {
  const tr = row.tr || (row.tr = el("tr"));
  // Rebuilt only when what it shows changed: a row rebuilt under the
  // pointer would swallow a click on its link.
  const shown = JSON.stringify([row.state, row.task, row.worker, row.reason, row.outputLen,
    row.state === "uploading" || row.state === "waiting" ? Math.round(row.progress * 100) : 0]);
  if (tr.dataset.shown === shown) return tr;
  tr.dataset.shown = shown;
  tr.dataset.state = row.state;
  tr.dataset.task = row.task ?? "";
  tr.replaceChildren();
  const state = el("td", { class: "state " + row.state }, stateText(row));
  if (row.state === "uploading" || row.state === "waiting") {
    state.append(" ", el("progress", { max: 1, value: row.progress }));
  }
  if (row.reason && row.state !== "queued" && row.state !== "running") {
    state.append(el("span", { class: "reason" }, row.reason));
  }
  const actions = el("td", { class: "actions" });
  if (row.task != null) {
    if (row.state === "done") {
      actions.append(el("a", { class: "button small", href: `/api/tasks/${row.task}/result`, download: "" }, "Download"));
    }
    if (row.state === "queued" || row.state === "running") {
      actions.append(el("button", { class: "small", type: "button", onclick: () => cancelTask(row) }, "Cancel"));
    }
    actions.append(el("button", { class: "small", type: "button", onclick: () => showHistory(row.task, row.name) }, "History"));
  }
  tr.append(
    el("td", { class: "name", title: row.name }, row.name),
    el("td", {}, row.task != null ? "#" + row.task : ""),
    state,
    el("td", {}, row.worker || ""),
    el("td", {}, row.outputLen != null ? fmtBytes(row.size) + " → " + fmtBytes(row.outputLen) : fmtBytes(row.size)),
    actions,
  );
  return tr;
}

function render() {
  const body = $("tasks").tBodies[0];
  const trs = rows.slice().reverse().map(renderRow);
  // Newest first; rows are only ever added, so only new ones move in.
  if (trs.length !== body.children.length || trs.some((tr, i) => body.children[i] !== tr)) {
    body.replaceChildren(...trs);
  }
  const count = (s) => rows.filter((r) => r.state === s).length;
  const done = count("done");
  const open = rows.filter((r) => r.state === "queued" || r.state === "running").length;
  $("batch-summary").textContent = rows.length === 0 ? "none yet" :
    `${rows.length} images: ${done} done, ${open} to go, ${count("failed")} failed, ` +
    `${count("cancelled")} cancelled, ${count("skipped")} skipped, ${uploading + waiting.length} uploading`;
  const zip = $("zip");
  zip.classList.toggle("disabled", done === 0);
  zip.href = `/api/batches/${BATCH}/zip`;
  $("cancel-all").disabled = open === 0;
}

// ---- history ----

function describe(e) {
  const [kind, d] = typeof e.event === "string" ? [e.event, {}] : Object.entries(e.event)[0];
  switch (kind) {
    case "Submitted": return `submitted as ${d.name} (${fmtBytes(d.len)})`;
    case "Leased": return `attempt ${d.attempt} handed to ${d.worker}`;
    case "Lost": return `attempt ${d.attempt} on ${d.worker} lost: ${d.why}`;
    case "Released": return `attempt ${d.attempt} given back by ${d.worker}`;
    case "Completed": return `attempt ${d.attempt} on ${d.worker} done in ${d.duration_ms} ms (${fmtBytes(d.len)})`;
    case "Failed": return `failed${d.worker ? " on " + d.worker : ""}: ${d.reason}`;
    case "Fetched": return "every client stored the result; its files were removed";
    case "Expired": return "past the retention time; its files were removed";
    case "Deleted": return "deleted";
    default: return kind + (d && Object.keys(d).length ? " " + JSON.stringify(d) : "");
  }
}

async function showHistory(task, name) {
  $("history-title").textContent = `Task #${task}` + (name ? ` — ${name}` : "");
  const list = $("history-events");
  list.replaceChildren(el("li", {}, "loading…"));
  $("history").showModal();
  try {
    const r = await fetch(`/api/tasks/${task}/history`);
    if (!r.ok) throw new Error((await r.text()).trim());
    const events = await r.json();
    list.replaceChildren(...events.map((e) =>
      el("li", {}, el("span", { class: "muted" }, new Date(e.at_ms).toLocaleTimeString() + " "), describe(e))));
  } catch (e) {
    list.replaceChildren(el("li", {}, "cannot read the history: " + e.message));
  }
}

// ---- the cluster ----

function renderCluster(s) {
  const c = s.cluster;
  $("master").textContent = `master ${c.master_id} · up ${Math.round(c.uptime_ms / 60000)} min`;
  for (const k of ["queued", "running", "done", "failed", "cancelled"]) $("n-" + k).textContent = c.tasks[k];
  const body = $("workers").tBodies[0];
  body.replaceChildren(...c.workers.map((w) => el("tr", { "data-worker": w.name },
    el("td", {}, w.name + (w.synthetic ? " (synthetic)" : "")),
    el("td", {}, w.addr),
    el("td", {}, w.threads),
    el("td", {}, w.running),
    el("td", {}, w.prefetched),
    el("td", {}, w.done),
    el("td", {}, w.failed),
    el("td", {}, w.heartbeat_age_ms == null ? "—" : (w.heartbeat_age_ms / 1000).toFixed(1) + " s ago"),
    el("td", {}, w.draining ? "draining" : (w.heartbeat_age_ms ?? 0) > 5000 ? "silent" : "working"),
  )));
  $("workers-summary").textContent = `${c.workers_total} connected · queue ${c.tasks.queued}`;
  $("no-workers").hidden = c.workers_total > 0;
  drawThroughput(s);
  drawStream(s);
}

function svgEl(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function drawThroughput(s) {
  // Tasks decided per 10 s over the last 10 minutes, as images per second.
  const nowS = Math.floor(s.now_ms / 1000);
  const bins = new Array(60).fill(0);
  for (const [sec, n] of s.decided) {
    const i = 59 - Math.floor((nowS - sec) / 10);
    if (i >= 0 && i < 60) bins[i] += n / 10;
  }
  const max = Math.max(1, ...bins);
  const svg = $("throughput");
  const pts = bins.map((v, i) => `${(i + 0.5) * 10},${135 - (v / max) * 120}`).join(" ");
  svg.replaceChildren(
    svgEl("polyline", { points: pts, fill: "none", stroke: "#2f6fdf", "stroke-width": 2 }),
    Object.assign(svgEl("text", { x: 4, y: 12 }), { textContent: `${max.toFixed(1)} images/s` }),
  );
  const recent = bins.slice(-3).reduce((a, b) => a + b, 0) / 3;
  $("rate").textContent = `${recent.toFixed(1)} images/s over the last 30 s`;
}

function drawStream(s) {
  const svg = $("stream");
  const from = s.now_ms - STREAM_WINDOW_MS;
  const spans = s.spans.filter((p) => (p.end_ms ?? s.now_ms) >= from);
  const workers = [...new Set([...s.cluster.workers.map((w) => w.name), ...spans.map((p) => p.worker)])];
  const rowH = Math.min(24, 130 / Math.max(1, workers.length));
  const x = (t) => ((Math.max(t, from) - from) / STREAM_WINDOW_MS) * 600;
  const parts = [];
  workers.forEach((w, i) => {
    parts.push(Object.assign(svgEl("text", { x: 2, y: i * rowH + rowH / 2 + 8 }), { textContent: w }));
  });
  for (const p of spans) {
    const row = workers.indexOf(p.worker);
    const x0 = x(p.start_ms);
    const x1 = x(p.end_ms ?? s.now_ms);
    const r = svgEl("rect", {
      class: "span " + p.outcome, x: x0, y: row * rowH + 4, height: Math.max(2, rowH - 6),
      width: Math.max(1.5, x1 - x0),
    });
    const took = ((p.end_ms ?? s.now_ms) - p.start_ms) / 1000;
    r.append(Object.assign(svgEl("title", {}), { textContent: `task #${p.task} attempt ${p.attempt} on ${p.worker}: ${p.outcome}, ${took.toFixed(2)} s` }));
    r.addEventListener("click", () => showHistory(p.task));
    parts.push(r);
  }
  svg.replaceChildren(...parts);
}

// ---- the event stream ----

function connect() {
  const link = $("link");
  const events = new EventSource(`/api/events?batch=${BATCH}`);
  events.onopen = () => { link.textContent = "live"; link.className = "pill live"; };
  events.onerror = () => { link.textContent = "reconnecting…"; link.className = "pill down"; };
  events.onmessage = (m) => {
    const { snapshot, tasks } = JSON.parse(m.data);
    if (snapshot) renderCluster(snapshot);
    applyTasks(tasks);
    render();
  };
}

// ---- wiring ----

function wire() {
  $("files").addEventListener("change", (e) => { addFiles([...e.target.files]); e.target.value = ""; });
  $("folder").addEventListener("change", (e) => { addFiles([...e.target.files]); e.target.value = ""; });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const files = [];
    const entries = [...e.dataTransfer.items].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
    if (entries.length === 0) files.push(...e.dataTransfer.files);
    for (const entry of entries) await walk(entry, "", files);
    addFiles(files);
  });
  $("cancel-all").addEventListener("click", async () => {
    try { await post(`/api/batches/${BATCH}/cancel`); } catch (e) { alert("cannot cancel: " + e.message); }
  });
  $("history-close").addEventListener("click", () => $("history").close());
  render();
  connect();
}

// A dropped folder, read recursively; names keep the folder path.
async function walk(entry, prefix, out) {
  if (entry.isFile) {
    const file = await new Promise((ok, err) => entry.file(ok, err));
    Object.defineProperty(file, "webkitRelativePath", { value: prefix + file.name });
    out.push(file);
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((ok, err) => reader.readEntries(ok, err));
      if (batch.length === 0) break;
      for (const e of batch) await walk(e, prefix + entry.name + "/", out);
    }
  }
}

wire();
