// The jointly node dashboard: a plain ES module over the node's REST API (/api), no dependencies.
//
// The API token lives in sessionStorage (this tab only).  Everything shown comes from this node's
// API and is built with DOM calls (never innerHTML), so names and reasons written by partners
// cannot inject markup.  Plots are inline SVG drawn below.

const API = new URL("../api/", document.baseURI);
const TOKEN_KEY = "jointly.token";
const TERMINAL = new Set(["succeeded", "failed", "cancelled", "rejected", "expired"]);
const POLL_MS = 2000; // while something is under way
const IDLE_POLL_MS = 15000; // the job list when every job has ended (partners may propose new ones)
const LEDGER_PAGE = 50;
const SVG_NS = "http://www.w3.org/2000/svg";

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  me: null, // {name, role}
  health: null, // {party, version, jobs_running, warm}
  view: 0, // bumped on every navigation: stale answers and polls are dropped
  timer: null,
  results: new Map(), // job id -> results answer (they do not change once a job succeeded)
  ledgerParty: null,
  ledgerParties: new Set(),
};

// ------------------------------------------------------------------ DOM helpers

const $ = (sel) => document.querySelector(sel);

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}
const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);
const s = (tag, attrs, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);

function table(headers, rows, attrs = {}) {
  return h("div", { class: "table-wrap" }, h("table", attrs,
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows)));
}
const empty = (text) => h("p", { class: "muted" }, text);
const chips = (items) => (items || []).map((x) => h("span", { class: "chip" }, x));
const badge = (st) => h("span", { class: `badge state-${st}`, "data-testid": "job-state" }, st);
const facts = (pairs) => h("dl", { class: "facts" }, pairs.filter(([, v]) => v !== undefined)
  .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]));
const jobHref = (id) => `#job/${encodeURIComponent(id)}`;

// ------------------------------------------------------------------ formatting

function when(t) {
  if (t === null || t === undefined) return "—";
  const d = new Date(t * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  for (n = n || 0; n >= 1024 && i < units.length - 1; i++) n /= 1024;
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}
function value(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "number") return !Number.isInteger(v) ? v.toFixed(4) : Math.abs(v) >= 1e4 ? v.toLocaleString("en") : String(v);
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}
const kvTable = (obj, attrs, headers = ["Setting", "Value"]) =>
  table(headers, Object.entries(obj || {}).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, value(v)))), attrs);

// ------------------------------------------------------------------ API

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function api(path, { method = "GET", body } = {}) {
  const init = { method, headers: { Accept: "application/json" }, cache: "no-store" };
  if (state.token) init.headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let reply;
  try {
    reply = await fetch(new URL(path, API), init);
  } catch (err) {
    throw new ApiError(0, `cannot reach the node (${err.message})`);
  }
  const data = reply.status === 204 ? null : await reply.json().catch(() => null);
  if (reply.ok) return data;
  const detail = data && typeof data.detail === "string" ? data.detail : `${reply.status} ${reply.statusText}`;
  if (reply.status === 401 && state.me) signOut("The node no longer accepts your token: sign in again.");
  throw new ApiError(reply.status, detail);
}

function explain(err, doing) {
  if (err.status === 403) return `Your role (${state.me ? state.me.role : "unknown"}) may not ${doing}: ${err.message}`;
  return `Could not ${doing}: ${err.message}`;
}

function flash(text) {
  const el = $("#flash");
  el.textContent = text;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { el.textContent = ""; }, 6000);
}

// ------------------------------------------------------------------ sign in / out

async function signIn(event) {
  event.preventDefault();
  const token = $("#token").value.trim();
  $("#login-error").textContent = "";
  if (!token) return;
  state.token = token;
  try {
    state.me = await api("me");
  } catch (err) {
    state.token = null;
    $("#login-error").textContent = err.status === 401 ? "This node does not know that token." : explain(err, "sign in");
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("#token").value = "";
  await enter();
}

function signOut(message = "") {
  sessionStorage.removeItem(TOKEN_KEY);
  Object.assign(state, { token: null, me: null, view: state.view + 1, ledgerParty: null });
  state.ledgerParties.clear();
  state.results.clear();
  clearTimeout(state.timer);
  $("#app").hidden = true;
  $("#who").hidden = true;
  $("#login").hidden = false;
  $("#view").replaceChildren();
  $("#login-error").textContent = message;
  $("#token").focus();
}

async function enter() {
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#who").hidden = false;
  $("#user-info").textContent = `${state.me.name} (${state.me.role})`;
  await refreshHeader();
  if (!state.ledgerParty && state.health) state.ledgerParty = state.health.party;
  route();
  refreshApprovalCount();
}

async function refreshHeader() {
  try {
    state.health = await api("health");
  } catch {
    return;
  }
  $("#party-name").textContent = state.health.party;
  const warming = state.health.warm === false ? " · warming up" : "";
  $("#node-info").textContent = `node v${state.health.version} · ${state.health.jobs_running} job(s) running${warming}`;
  document.title = `${state.health.party} · jointly node`;
}

async function refreshApprovalCount(jobs) {
  try {
    jobs = jobs || (await api("approvals"));
  } catch {
    return;
  }
  const el = $("#approval-count");
  el.textContent = String(jobs.length);
  el.hidden = jobs.length === 0;
}

// ------------------------------------------------------------------ routing and polling

const VIEWS = { jobs: showJobs, approvals: showApprovals, datasets: showDatasets, models: showModels, ledger: showLedger };

function route() {
  if (!state.me) return;
  const [name, arg] = location.hash.replace(/^#\/?/, "").split("/");
  const gen = ++state.view;
  clearTimeout(state.timer);
  const tab = name === "job" ? "jobs" : VIEWS[name] ? name : "jobs";
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.view === tab) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (name === "job" && arg) showJob(gen, decodeURIComponent(arg));
  else VIEWS[tab](gen);
}

// Refresh the view later; not while the person is typing a reason or reading an error in it.
function poll(gen, fn, ms = POLL_MS) {
  clearTimeout(state.timer);
  state.timer = setTimeout(() => {
    if (gen !== state.view) return;
    const view = $("#view");
    const busy = [...view.querySelectorAll("input")].some((i) => i.value || i === document.activeElement) ||
      view.querySelector(".inline-msg:not(:empty)");
    if (busy) poll(gen, fn, ms);
    else fn(gen);
  }, ms);
}

// Replace the view's content, keeping <details data-key> open across refreshes.
function render(gen, ...nodes) {
  if (gen !== state.view) return false;
  const view = $("#view");
  const open = new Set([...view.querySelectorAll("details[open][data-key]")].map((d) => d.dataset.key));
  view.replaceChildren(...nodes.flat().filter(Boolean));
  for (const d of view.querySelectorAll("details[data-key]")) if (open.has(d.dataset.key)) d.open = true;
  return true;
}

function fail(gen, err, doing, retry) {
  render(gen, h("div", { class: "alert", role: "alert" }, explain(err, doing), " ",
    h("button", { type: "button", class: "secondary", onclick: () => retry(++state.view) }, "Retry")));
}

// ------------------------------------------------------------------ jobs

async function showJobs(gen) {
  let list;
  try {
    list = await api("jobs?limit=100");
  } catch (err) {
    return fail(gen, err, "list jobs", showJobs);
  }
  const live = list.jobs.some((j) => !TERMINAL.has(j.state));
  const rows = list.jobs.map((j) => h("tr", {
    class: "clickable", "data-testid": "job-row", "data-job-id": j.job_id,
    onclick: (e) => { if (!e.target.closest("a")) location.hash = jobHref(j.job_id); },
  },
  h("td", {}, h("a", { href: jobHref(j.job_id) }, j.name || j.job_id), h("div", { class: "muted small mono" }, j.job_id)),
  h("td", {}, j.kind), h("td", {}, badge(j.state)), h("td", {}, j.stage || "—"), h("td", {}, j.initiator),
  h("td", {}, j.parties.join(", ")), h("td", {}, when(j.created)), h("td", {}, when(j.finished))));
  const shown = render(gen, h("h2", {}, "Jobs"),
    h("p", { class: "muted small" }, `${list.total} job(s)`, live ? " · refreshing every 2 s while some have not ended" : ""),
    rows.length ? table(["Job", "Kind", "State", "Stage", "Initiator", "Parties", "Created", "Finished"], rows,
      { "data-testid": "jobs-table" }) : empty("No jobs yet. Propose one with `jointly job propose` or the API."));
  if (shown) {
    poll(gen, showJobs, live ? POLL_MS : IDLE_POLL_MS);
    refreshHeader();
    refreshApprovalCount();
  }
}

async function loadResults(id) {
  if (!state.results.has(id)) {
    try {
      state.results.set(id, await api(`jobs/${encodeURIComponent(id)}/results`));
    } catch (err) {
      return { error: err.status === 404 ? "This node holds no results of this job (results stay with their owners)." : explain(err, "read the results") };
    }
  }
  return state.results.get(id);
}

async function showJob(gen, id) {
  let job;
  try {
    job = await api(`jobs/${encodeURIComponent(id)}`);
  } catch (err) {
    return fail(gen, err, `read job ${id}`, (g) => showJob(g, id));
  }
  const results = job.state === "succeeded" ? await loadResults(id) : null;
  const mine = state.health && state.health.party;
  const decided = new Map((job.approvals || []).map((a) => [a.party, a]));
  const shown = render(gen,
    h("p", {}, h("a", { href: "#jobs" }, "← All jobs")),
    h("h2", { "data-testid": "job-title" }, job.name || job.job_id, badge(job.state)),
    h("div", { class: "grid2", "data-testid": "job-detail" },
      h("div", {}, facts([
        ["Job id", h("span", { class: "mono" }, job.job_id)], ["Kind", job.kind], ["Stage", job.stage || "—"],
        ["Initiator", job.initiator], ["Parties", job.parties.join(", ")], ["Created", when(job.created)],
        ["Started", when(job.started)], ["Finished", when(job.finished)],
        ["Expires", job.state === "pending" ? when(job.expires_at) : undefined],
        ["Traffic", `${bytes(job.bytes_sent)} sent · ${bytes(job.bytes_received)} received`],
      ])),
      h("div", {},
        job.error && h("div", { class: "alert", role: "alert", "data-testid": "job-error" },
          h("strong", {}, job.state === "rejected" ? `Rejected by ${job.error.party}` : `Failed on ${job.error.party}`),
          job.error.stage ? ` at stage “${job.error.stage}”` : "", `: ${job.error.reason}`),
        progressView(job.progress),
        (job.awaiting || []).includes(mine) && decisionBox(job),
        !TERMINAL.has(job.state) && state.me.role !== "auditor" && cancelBox(job))),
    h("h3", {}, "Approvals"),
    table(["Party", "Decision", "By", "Reason", "When"], job.parties.map((p) => {
      const a = decided.get(p);
      const word = a ? (a.decision === "approve" ? "approved" : "rejected") : (job.awaiting || []).includes(p) ? "awaiting" : "—";
      const cls = a ? (a.decision === "approve" ? "ok" : "bad") : "state-pending";
      return h("tr", { "data-testid": "approval-row", "data-party": p }, h("td", {}, p),
        h("td", {}, word === "—" ? word : h("span", { class: `badge ${cls}` }, word)), h("td", {}, a ? a.user || "—" : "—"),
        h("td", {}, a ? a.reason || "—" : "—"), h("td", {}, a ? when(a.created) : "—"));
    })),
    h("h3", {}, `What this job uses of ${mine || "this party"}'s data`), usageView(job.usage),
    results && h("h3", {}, "Results"), results && resultsView(results, job),
    h("h3", {}, "Timeline"),
    (job.events || []).length ? table(["Time", "Event", "Stage", "Message"], job.events.map((e) =>
      h("tr", {}, h("td", { class: "mono small" }, when(e.time)), h("td", {}, e.kind), h("td", {}, e.stage || ""),
        h("td", {}, e.message || ""))), { "data-testid": "timeline" }) : empty("No events yet."),
    h("details", { "data-key": "spec" }, h("summary", {}, "Job spec (as every party approved it)"),
      h("pre", {}, JSON.stringify(job.spec, null, 2))));
  if (shown && !TERMINAL.has(job.state)) poll(gen, (g) => showJob(g, id));
}

function progressView(progress) {
  const tasks = Object.entries(progress || {});
  if (!tasks.length) return null;
  return h("div", { "data-testid": "progress" }, h("h4", {}, "Progress"), tasks.map(([task, [done, total]]) => {
    const label = `progress-${task.replace(/\W+/g, "-")}`;
    return h("div", { class: "progress-row" }, h("span", { id: label }, task),
      h("progress", { max: total || 1, value: done, "aria-labelledby": label }),
      h("span", { class: "small muted" }, `${done} / ${total}`));
  }));
}

function usageView(u) {
  if (!u) return empty("This node did not describe the job's use of its data.");
  const list = (title, items) => [h("h4", {}, title),
    (items || []).length ? h("ul", {}, items.map((x) => h("li", {}, x))) : empty("Nothing.")];
  return h("div", { class: "usage", "data-testid": "usage" },
    u.role && h("p", {}, "Role of this party: ", h("strong", {}, u.role)),
    h("h4", {}, "Data read"),
    (u.datasets || []).length ? table(["Dataset", "Path", "Id column", "Label", "Columns"], u.datasets.map((d) =>
      h("tr", {}, h("td", {}, d.name || "(file)"), h("td", { class: "mono small break" }, d.path || "—"),
        h("td", {}, d.id_column || "—"), h("td", {}, d.label || "—"), h("td", {}, chips(d.columns))))) :
      empty("None: this party takes part without data."),
    list("Outputs kept on this node", u.outputs),
    list("What the partners learn", u.partners_learn),
    h("h4", {}, "Privacy settings"), kvTable(u.privacy));
}

function decisionBox(job, after) {
  const id = `reason-${job.job_id}`;
  const input = h("input", { id, type: "text", maxlength: 2000, "data-testid": "reason", autocomplete: "off" });
  const msg = h("p", { class: "inline-msg", role: "alert", "data-testid": "decision-error" });
  const buttons = [];
  const decide = async (decision) => {
    const reason = input.value.trim();
    msg.textContent = "";
    if (decision === "reject" && !reason) {
      msg.textContent = "Give a reason to reject: every party will see it.";
      input.focus();
      return;
    }
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await api(`jobs/${encodeURIComponent(job.job_id)}/${decision}`, { method: "POST", body: { reason } });
    } catch (err) {
      msg.textContent = explain(err, `${decision} this job`);
      buttons.forEach((b) => { b.disabled = false; });
      return;
    }
    flash(`${decision === "approve" ? "Approved" : "Rejected"} job “${job.name}” for ${state.health ? state.health.party : "this party"}.`);
    refreshApprovalCount();
    (after || route)();
  };
  for (const [decision, text] of [["approve", "Approve"], ["reject", "Reject"]]) {
    buttons.push(h("button", { type: "button", class: decision, "data-testid": `${decision}-button`,
      "data-job-id": job.job_id, onclick: () => decide(decision) }, text));
  }
  return h("form", { class: "decision", onsubmit: (e) => e.preventDefault(), "aria-label": `Decision on ${job.name}` },
    h("label", { for: id }, "Reason ", h("span", { class: "muted small" }, "(optional to approve, required to reject)")),
    input, h("div", { class: "buttons" }, buttons), msg);
}

function cancelBox(job) {
  const msg = h("p", { class: "inline-msg", role: "alert" });
  const button = h("button", { type: "button", class: "secondary", "data-testid": "cancel-button", onclick: async () => {
    if (!window.confirm(`Cancel job “${job.name}” on every party?`)) return;
    button.disabled = true;
    try {
      await api(`jobs/${encodeURIComponent(job.job_id)}/cancel`, { method: "POST" });
      flash(`Asked to cancel job “${job.name}”.`);
      route();
    } catch (err) {
      msg.textContent = explain(err, "cancel this job");
      button.disabled = false;
    }
  } }, "Cancel job");
  return h("div", { class: "decision" }, h("div", { class: "buttons" }, button), msg);
}

// ------------------------------------------------------------------ results and plots

function resultsView(res, job) {
  if (res.error) return empty(res.error);
  const result = res.result || {};
  const metrics = res.metrics || {};
  const joint = metrics.metrics || result.metrics;
  const baseline = metrics.baseline || result.baseline;
  const plots = [];
  if (metrics.roc) plots.push(rocPlot(metrics.roc, joint && joint.auc));
  if (Array.isArray(result.history) && result.history.length) plots.push(historyPlot(result.history));
  if (Array.isArray(result.rounds) && result.rounds.length > 1) plots.push(roundsPlot(result.rounds));
  if (job.kind === "psi" || "intersection_size" in result) plots.push(psiPlot(result));
  const scalars = Object.entries(result).filter(([, v]) => v === null || typeof v !== "object");
  return h("div", { "data-testid": "results" },
    joint && table(["Metric", "Joint model", ...(baseline ? ["This party alone"] : [])], Object.keys(joint).map((k) =>
      h("tr", {}, h("td", {}, k), h("td", {}, value(joint[k])),
        baseline && h("td", {}, value(baseline[k])))), { "data-testid": "metrics-table" }),
    plots.some(Boolean) && h("div", { class: "plots" }, plots.filter(Boolean)),
    h("h4", {}, "Summary"), kvTable(Object.fromEntries(scalars), { "data-testid": "result-summary" }, ["Field", "Value"]));
}

function niceTicks(lo, hi, integer = false, n = 5) {
  const raw = (hi - lo || 1) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((x) => x >= raw);
  if (integer) step = Math.max(1, Math.round(step)); // counts: trees, epochs
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toFixed(10)));
  return out;
}

const PLOT = { w: 440, h: 300, l: 60, r: 16, t: 34, b: 44 };

// A line plot: series = [{name, points: [[x, y], ...]}]; x and y are [min, max].
function linePlot({ testid, title, xLabel, yLabel, series, x, y, diagonal = false, legend = series.length > 1, integerX = false }) {
  const { w, h: ht, l, r, t, b } = PLOT;
  const sx = (v) => l + (x[1] === x[0] ? 0.5 : (v - x[0]) / (x[1] - x[0])) * (w - l - r);
  const sy = (v) => ht - b - (y[1] === y[0] ? 0.5 : (v - y[0]) / (y[1] - y[0])) * (ht - t - b);
  const titleId = `${testid}-title`;
  const svg = s("svg", { viewBox: `0 0 ${w} ${ht}`, class: "plot", role: "img", "aria-labelledby": titleId,
    "data-testid": testid, id: testid }, s("title", { id: titleId }, title));
  for (const v of niceTicks(x[0], x[1], integerX)) {
    svg.append(s("line", { class: "grid", x1: sx(v), x2: sx(v), y1: t, y2: ht - b }),
      s("text", { class: "tick", x: sx(v), y: ht - b + 14, "text-anchor": "middle" }, String(v)));
  }
  for (const v of niceTicks(y[0], y[1])) {
    svg.append(s("line", { class: "grid", x1: l, x2: w - r, y1: sy(v), y2: sy(v) }),
      s("text", { class: "tick", x: l - 6, y: sy(v) + 3.5, "text-anchor": "end" }, String(v)));
  }
  svg.append(s("line", { class: "axis", x1: l, x2: w - r, y1: ht - b, y2: ht - b }),
    s("line", { class: "axis", x1: l, x2: l, y1: t, y2: ht - b }),
    s("text", { class: "title", x: w / 2, y: 20, "text-anchor": "middle" }, title),
    s("text", { class: "axis-label", x: (l + w - r) / 2, y: ht - 8, "text-anchor": "middle" }, xLabel),
    s("text", { class: "axis-label", transform: `translate(13 ${(t + ht - b) / 2}) rotate(-90)`, "text-anchor": "middle" }, yLabel));
  if (diagonal) svg.append(s("line", { class: "diag", x1: sx(x[0]), y1: sy(y[0]), x2: sx(x[1]), y2: sy(y[1]) }));
  series.forEach((ser, i) => {
    const d = ser.points.map(([px, py], k) => `${k ? "L" : "M"}${sx(px).toFixed(1)},${sy(py).toFixed(1)}`).join("");
    svg.append(s("path", { class: `line s${i % 4}`, d }));
    if (ser.points.length <= 40) {
      for (const [px, py] of ser.points) svg.append(s("circle", { class: `s${i % 4}`, cx: sx(px), cy: sy(py), r: 2.8 }));
    }
    if (legend) {
      const ly = t + 8 + i * 15;
      svg.append(s("line", { class: `line s${i % 4}`, x1: w - r - 120, x2: w - r - 104, y1: ly, y2: ly }),
        s("text", { class: "legend", x: w - r - 100, y: ly + 3.5 }, ser.name));
    }
  });
  return svg;
}

function rocPlot(roc, auc) {
  const points = roc.fpr.map((f, i) => [f, roc.tpr[i]]);
  const title = typeof auc === "number" ? `ROC curve (AUC ${auc.toFixed(3)})` : "ROC curve";
  return linePlot({ testid: "roc-plot", title, xLabel: "false positive rate", yLabel: "true positive rate",
    series: [{ name: "joint model", points }], x: [0, 1], y: [0, 1], diagonal: true });
}

function historyPlot(history) {
  const xKey = ["tree", "epoch", "iteration"].find((k) => k in history[0]);
  const keys = Object.keys(history[0]).filter((k) => k !== xKey && typeof history[0][k] === "number");
  const aucs = keys.filter((k) => k.includes("auc"));
  const shown = aucs.length ? aucs : keys.filter((k) => k.includes("loss"));
  const series = shown.map((k) => ({ name: k.replace(/_/g, " "), points: history.map((row, i) => [xKey ? row[xKey] : i + 1, row[k]]) }))
    .map((ser) => ({ ...ser, points: ser.points.filter(([, v]) => typeof v === "number") }));
  const xs = series.flatMap((ser) => ser.points.map((p) => p[0]));
  const ys = series.flatMap((ser) => ser.points.map((p) => p[1]));
  const pad = (Math.max(...ys) - Math.min(...ys)) * 0.1 || 0.05;
  const y = [Math.min(...ys) - pad, Math.max(...ys) + pad];
  if (aucs.length) y[1] = Math.min(1, y[1]);
  const what = aucs.length ? "AUC" : "loss";
  return linePlot({ testid: "history-plot", title: `Training ${what} per ${xKey || "step"}`, xLabel: xKey || "step",
    yLabel: what, series, x: [Math.min(...xs), Math.max(...xs)], y, integerX: true });
}

// Federated learning: accuracy and AUC of the global model (on the clients' test rows) after each round.
function roundsPlot(rounds) {
  const series = ["accuracy", "auc"].map((k) => ({ name: k === "auc" ? "AUC" : k,
    points: rounds.filter((r) => typeof r[k] === "number").map((r) => [r.round, r[k]]) }))
    .filter((ser) => ser.points.length);
  if (!series.length) return null;
  const ys = series.flatMap((ser) => ser.points.map((p) => p[1]));
  const y = [Math.max(0, Math.min(...ys) - 0.05), Math.min(1, Math.max(...ys) + 0.05)];
  const xs = rounds.map((r) => r.round);
  return linePlot({ testid: "rounds-plot", title: "Global model per round (federated evaluation)", xLabel: "round",
    yLabel: "accuracy / AUC", series, x: [Math.min(...xs), Math.max(...xs)], y, integerX: true });
}

function psiPlot(result) {
  const bars = [["input rows (this party)", result.input_rows], ["intersection", result.intersection_size]]
    .filter(([, v]) => typeof v === "number");
  const { w, l, r } = PLOT;
  const ht = 60 + bars.length * 44;
  const max = Math.max(1, ...bars.map(([, v]) => v));
  const share = bars.length === 2 && result.input_rows ? ` (${((100 * result.intersection_size) / result.input_rows).toFixed(1)}%)` : "";
  const title = "intersection_size" in result ? `Intersection: ${value(result.intersection_size)} rows${share}` : "Input rows";
  const svg = s("svg", { viewBox: `0 0 ${w} ${ht}`, class: "plot", role: "img", "aria-labelledby": "psi-plot-title",
    "data-testid": "psi-plot", id: "psi-plot" }, s("title", { id: "psi-plot-title" }, title),
  s("text", { class: "title", x: w / 2, y: 20, "text-anchor": "middle" }, title));
  const x0 = l + 110;
  bars.forEach(([label, v], i) => {
    const y = 40 + i * 44;
    const width = ((w - r - x0 - 60) * v) / max;
    svg.append(s("text", { class: "bar-label", x: x0 - 8, y: y + 17, "text-anchor": "end" }, label),
      s("rect", { class: `s${i}`, x: x0, y, width: Math.max(1, width), height: 26, rx: 3 }),
      s("text", { class: "bar-label", x: x0 + width + 6, y: y + 17 }, value(v)));
  });
  return svg;
}

// ------------------------------------------------------------------ approvals

async function showApprovals(gen) {
  let jobs;
  try {
    jobs = await api("approvals");
  } catch (err) {
    return fail(gen, err, "list the jobs waiting for approval", showApprovals);
  }
  refreshApprovalCount(jobs);
  const party = state.health ? state.health.party : "this party";
  render(gen, h("h2", {}, "Approvals"),
    h("p", { class: "muted" }, `Jobs waiting for ${party}'s decision. Each shows exactly which of ${party}'s data it would read, what it keeps here and what the partners learn.`),
    state.me.role === "auditor" && h("p", { class: "alert" }, "Your role (auditor) may read these jobs but not approve or reject them."),
    jobs.length ? jobs.map((job) => h("article", { class: "card", "data-testid": "approval-card", "data-job-id": job.job_id },
      h("h3", {}, h("a", { href: jobHref(job.job_id) }, job.name || job.job_id), " ",
        h("span", { class: "muted small" }, `${job.kind} · proposed by ${job.initiator} · ${when(job.created)}`)),
      h("p", { class: "small" }, `Parties: ${job.parties.join(", ")}. `,
        (job.approvals || []).map((a) => `${a.party} ${a.decision === "approve" ? "approved" : "rejected"}. `),
        job.expires_at ? `Expires ${when(job.expires_at)} unless every party approves.` : ""),
      usageView(job.usage),
      decisionBox(job, () => showApprovals(++state.view)))) : empty("Nothing is waiting for your decision."));
}

// ------------------------------------------------------------------ datasets and models

async function showDatasets(gen) {
  let items;
  try {
    items = await api("datasets");
  } catch (err) {
    return fail(gen, err, "list datasets", showDatasets);
  }
  render(gen, h("h2", {}, "Datasets"),
    h("p", { class: "muted" }, "Tables registered on this node: their schemas only. Rows never leave the node."),
    items.length ? table(["Name", "Format", "Id column", "Columns", "Rows", "Registered", "Description"], items.map((d) =>
      h("tr", { "data-testid": "dataset-row" }, h("td", {}, h("strong", {}, d.name), h("div", { class: "mono small muted break" }, d.path)),
        h("td", {}, d.format), h("td", {}, h("code", {}, d.id_column)),
        h("td", {}, chips(d.columns.map((c) => `${c.name}: ${c.dtype}`))), h("td", { class: "num" }, value(d.rows)),
        h("td", {}, when(d.created)), h("td", {}, d.description || ""))), { "data-testid": "datasets-table" })
      : empty("No datasets registered yet (`jointly dataset add`)."));
}

async function showModels(gen) {
  let items;
  try {
    items = await api("models");
  } catch (err) {
    return fail(gen, err, "list models", showModels);
  }
  render(gen, h("h2", {}, "Models"),
    h("p", { class: "muted" }, "Model parts this party keeps from training jobs (metadata only)."),
    items.length ? table(["Name", "Version", "Kind", "Role", "Training job", "Created"], items.map((m) =>
      h("tr", { "data-testid": "model-row" }, h("td", {}, m.name), h("td", { class: "num" }, `v${m.version}`), h("td", {}, m.kind),
        h("td", {}, m.role), h("td", {}, h("a", { href: jobHref(m.job_id), class: "mono" }, m.job_id)), h("td", {}, when(m.created)))),
    { "data-testid": "models-table" }) : empty("No models yet."));
}

// ------------------------------------------------------------------ ledger

async function showLedger(gen) {
  const party = state.ledgerParty || (state.health && state.health.party);
  let head;
  let page;
  try {
    head = await api("ledger/head");
    const q = party ? `party=${encodeURIComponent(party)}&` : "";
    const size = (await api(`ledger?${q}limit=1`)).size;
    page = await api(`ledger?${q}offset=${Math.max(0, size - LEDGER_PAGE)}&limit=${LEDGER_PAGE}`);
  } catch (err) {
    return fail(gen, err, "read the ledger", showLedger);
  }
  state.ledgerParties.add(head.party);
  head.cosigners.forEach((p) => state.ledgerParties.add(p));
  const report = h("div", { "data-testid": "verify-report", "aria-live": "polite" });
  const verify = h("button", { type: "button", "data-testid": "verify-button", onclick: async () => {
    verify.disabled = true;
    report.replaceChildren(empty("Verifying every log…"));
    try {
      report.replaceChildren(verifyView(await api("ledger/verify", { method: "POST" })));
    } catch (err) {
      report.replaceChildren(h("p", { class: "alert", role: "alert" }, explain(err, "verify the ledger")));
    }
    verify.disabled = false;
  } }, "Verify");
  const select = h("select", { id: "ledger-party", onchange: (e) => { state.ledgerParty = e.target.value; route(); } },
    [...state.ledgerParties].sort().map((p) => h("option", { value: p, selected: p === page.party }, p)));
  render(gen, h("h2", {}, "Ledger"),
    h("div", { class: "grid2" },
      h("div", { class: "card" }, h("h3", {}, "Signed tree head of this node's log"), facts([
        ["Party", head.party], ["Entries", value(head.size)], ["Root", h("span", { class: "mono small break" }, head.root)],
        ["Signed", when(head.time)], ["Cosigned by", head.cosigners.length ? head.cosigners.join(", ") : "nobody yet"],
      ])),
      h("div", { class: "card" }, h("h3", {}, "Verification"),
        h("p", { class: "small muted" }, "Checks every log this node holds: signatures, Merkle proofs, heads and replicas."),
        verify, report)),
    h("h3", {}, h("label", { for: "ledger-party" }, "Latest entries of the log of "), select),
    h("p", { class: "muted small" }, `${value(page.size)} entries in total; the latest ${page.entries.length} shown, newest first.`),
    table(["#", "Time", "Event", "Job", "Stage", "Data", "Signature"], page.entries.slice().reverse().map((e) => {
      const data = Object.entries(e.data || {}).map(([k, v]) => `${k}=${value(v)}`).join(" ");
      return h("tr", { "data-testid": "ledger-row" }, h("td", { class: "num" }, e.seq), h("td", { class: "mono small" }, when(e.time)),
        h("td", {}, e.event), h("td", {}, e.job_id ? h("a", { href: jobHref(e.job_id), class: "mono small" }, e.job_id) : "—"),
        h("td", {}, e.stage || ""), h("td", { class: "mono small break", title: data }, data.length > 140 ? `${data.slice(0, 140)}…` : data),
        h("td", {}, h("span", { class: `badge ${e.signature_ok ? "ok" : "bad"}` }, e.signature_ok ? "valid" : "INVALID")));
    }), { "data-testid": "ledger-table" }));
}

function verifyView(rep) {
  Object.keys(rep.parties).forEach((p) => state.ledgerParties.add(p));
  return h("div", {},
    h("p", {}, h("span", { class: `badge ${rep.ok ? "ok" : "bad"}`, "data-testid": "verify-ok" }, rep.ok ? "OK" : "PROBLEMS"),
      ` ${value(rep.checked_entries)} entries checked`),
    table(["Party", "Result", "Entries", "Problems"], Object.entries(rep.parties).map(([p, v]) =>
      h("tr", {}, h("td", {}, p), h("td", {}, h("span", { class: `badge ${v.ok ? "ok" : "bad"}` }, v.ok ? "ok" : "problems")),
        h("td", { class: "num" }, value(v.size)), h("td", {}, v.problems.length ? h("ul", {}, v.problems.map((x) => h("li", {}, x))) : "—")))));
}

// ------------------------------------------------------------------ start

$("#login-form").addEventListener("submit", signIn);
$("#sign-out").addEventListener("click", () => signOut("Signed out."));
window.addEventListener("hashchange", route);

(async () => {
  if (!state.token) return signOut();
  try {
    state.me = await api("me");
  } catch (err) {
    return signOut(err.status === 401 ? "Your saved token is not valid any more: sign in again." : explain(err, "reach the node"));
  }
  await enter();
})();
