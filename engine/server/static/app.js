// The dashboard: state kept from the API and the live feed, the actions of
// its buttons, and one render per animation frame at most.

import { Api, ApiError, errorMessage } from "./api.js";
import { Live } from "./live.js";
import { askToken } from "./token.js";
import { applyFrame, sortOrder, takeView } from "./model.js";
import { PAGE_SIZE, renderBatches, renderDetail, renderSchedules, renderStatus } from "./render.js";

const JOBS_PAGE = 50;
const STATUS_EVERY_MS = 3000;
const LIST_EVERY_MS = 10000;
const CHILD_EVERY_MS = 2000;

const $ = (id) => document.getElementById(id);

const state = {
  batches: new Map(),
  order: [],
  page: 0,
  status: null,
  health: null,
  schedules: null,
  selected: null,
  log: [],
  logVersion: 0,
  logDrawn: -1,
  jobs: { state: "", cursor: null, list: [], next: null, error: "", version: 0, drawn: -1 },
  features: { jobActions: false },
  requests: new Set(),
  live: false,
};
const rows = new Map();
const hooks = { refresh: (id) => refreshSoon(id), reloadJobs: () => reloadJobsSoon() };

// --- rendering -------------------------------------------------------------

let frameRequested = false;

function invalidate() {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(() => {
    frameRequested = false;
    const now = Date.now();
    renderStatus(state);
    renderBatches(state, rows, now);
    renderDetail(state);
    renderSchedules(state);
  });
}

function showMessage(text) {
  const node = $("page-message");
  node.hidden = !text;
  node.textContent = text;
}

async function loadBatches() {
  const body = await state.api.json("GET", "/api/batches");
  const seen = new Set();
  for (const view of body.batches) {
    takeView(state, view, hooks);
    seen.add(view.batchId);
  }
  for (const id of [...state.batches.keys()]) if (!seen.has(id)) state.batches.delete(id);
  sortOrder(state);
  invalidate();
}

const toRefresh = new Set();
let refreshTimer = null;

// Ask the server for these batches soon, together.
function refreshSoon(batchId) {
  toRefresh.add(batchId);
  if (refreshTimer === null) refreshTimer = setTimeout(flushRefresh, 200);
}

async function flushRefresh() {
  refreshTimer = null;
  const ids = [...toRefresh];
  toRefresh.clear();
  await Promise.all(ids.map(refreshBatch));
}

async function refreshBatch(batchId) {
  const reply = await state.api.call("GET", `/api/batches/${encodeURIComponent(batchId)}`);
  if (reply.status === 200) takeView(state, reply.body, hooks);
  else if (reply.status === 404) {
    state.batches.delete(batchId);
    sortOrder(state);
  }
  invalidate();
}

let statusTimer = null;

function onFrames(frames) {
  for (const frame of frames) applyFrame(state, frame, hooks);
  const runsChanged = frames.some((f) => f.event !== "job:progress" && f.event !== "processing:progress");
  if (runsChanged && statusTimer === null) {
    statusTimer = setTimeout(() => {
      statusTimer = null;
      loadStatus().catch((error) => showMessage(error.message));
    }, 300);
  }
  invalidate();
}

// --- polling ------------------------------------------------------------------

async function loadStatus() {
  const [status, health] = await Promise.all([
    state.api.json("GET", "/api/status"),
    state.api.call("GET", "/health"),
  ]);
  state.status = status;
  state.health = health.body;
  if (state.schedulesKnown) {
    state.schedules = (await state.api.json("GET", "/api/schedules")).schedules;
  }
  invalidate();
}

async function loadChildren() {
  const running = state.order
    .slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE)
    .filter((id) => state.batches.get(id).running);
  await Promise.all(running.map(refreshBatch));
}

// Polls `task` every `ms`. A failure is shown until a later poll succeeds
// (a message of an action stays until the next action replaces it).
let pollFailed = false;

function every(ms, task) {
  const run = async () => {
    try {
      await task();
      if (pollFailed) showMessage("");
      pollFailed = false;
    } catch (error) {
      showMessage(error.message);
      pollFailed = true;
    }
    setTimeout(run, ms);
  };
  setTimeout(run, ms);
}

// --- jobs of the selected batch ------------------------------------------------

let jobsTimer = null;

function reloadJobsSoon() {
  if (jobsTimer === null) jobsTimer = setTimeout(() => loadJobs(state.jobs.cursor), 500);
}

async function loadJobs(cursor) {
  jobsTimer = null;
  const id = state.selected;
  if (id === null) return;
  const jobs = state.jobs;
  const query = new URLSearchParams({ limit: String(JOBS_PAGE) });
  if (jobs.state) query.set("state", jobs.state);
  if (cursor) query.set("cursor", cursor);
  try {
    const body = await state.api.json("GET", `/api/batches/${encodeURIComponent(id)}/jobs?${query}`);
    if (state.selected !== id) return;
    jobs.list = body.jobs;
    jobs.next = body.nextCursor;
    jobs.cursor = cursor;
    jobs.error = "";
  } catch (error) {
    jobs.list = [];
    jobs.next = null;
    jobs.error = error.message;
  }
  jobs.version += 1;
  invalidate();
}

function select(batchId) {
  state.selected = batchId;
  state.log = [];
  state.logVersion += 1;
  state.jobs.cursor = null;
  loadJobs(null);
  invalidate();
  $("detail").scrollIntoView({ block: "nearest" });
}

// --- actions ------------------------------------------------------------------

function notice(batch, text, kind) {
  batch.notice = text ? { text, kind } : null;
}

async function guarded(batch, name, work) {
  batch.requests.add(name);
  invalidate();
  try {
    await work();
  } catch (error) {
    notice(batch, error.message, "error");
  } finally {
    batch.requests.delete(name);
    invalidate();
  }
}

async function start(batch) {
  const reply = await state.api.call(
    "POST",
    `/api/jobs/process/all/${encodeURIComponent(batch.batchId)}`,
  );
  if (reply.status === 200) {
    batch.running = true;
    notice(batch, "started", "ok");
  } else if (reply.status === 202) {
    batch.running = true;
    notice(batch, "already running", "info");
  } else if (reply.status === 429) {
    const seconds = Number.parseInt(reply.headers.get("Retry-After") || "1", 10);
    batch.retryAt = Date.now() + Math.max(1, seconds) * 1000;
    notice(batch, "capacity reached", "warn");
    setTimeout(invalidate, Math.max(1, seconds) * 1000 + 20);
  } else {
    throw new ApiError(reply.status, "", errorMessage(reply));
  }
  refreshSoon(batch.batchId);
}

const batchActions = {
  open: async (batch) => select(batch.batchId),
  start,
  cancel: async (batch) => {
    await state.api.json("POST", `/api/batches/${encodeURIComponent(batch.batchId)}/cancel`);
    notice(batch, "cancelled", "ok");
    refreshSoon(batch.batchId);
  },
  retry: async (batch) => {
    const body = await state.api.json("POST", `/api/batches/${encodeURIComponent(batch.batchId)}/retry`);
    notice(batch, `${body.requeued} failed jobs back to pending`, "ok");
    refreshSoon(batch.batchId);
    if (batch.batchId === state.selected) reloadJobsSoon();
  },
  delete: async (batch) => {
    await state.api.json("DELETE", `/api/batches/${encodeURIComponent(batch.batchId)}`);
    state.batches.delete(batch.batchId);
    if (state.selected === batch.batchId) state.selected = null;
    sortOrder(state);
  },
};

async function jobAction(action, jobId) {
  try {
    const body = await state.api.json("POST", `/api/jobs/${encodeURIComponent(jobId)}/${action}`);
    showMessage("");
    if (state.selected) refreshSoon(state.selected);
    reloadJobsSoon();
    return body;
  } catch (error) {
    showMessage(`job ${jobId}: ${error.message}`);
    return null;
  }
}

async function createBatch(event) {
  event.preventDefault();
  const message = $("create-message");
  let payload;
  try {
    payload = JSON.parse($("create-payload").value || "null");
  } catch (error) {
    message.textContent = `The payload is not JSON: ${error.message}`;
    return;
  }
  const count = Number.parseInt($("create-count").value, 10);
  const body = { type: $("create-type").value, jobs: Array.from({ length: count }, () => ({ payload })) };
  const batchId = $("create-id").value.trim();
  if (batchId) body.batchId = batchId;
  const submit = event.submitter || $("create-form").querySelector("button");
  submit.disabled = true;
  try {
    const created = await state.api.json("POST", "/api/batches", body);
    message.textContent = `Created ${created.batchId} with ${created.enqueued} jobs.`;
    await refreshBatch(created.batchId);
    const batch = state.batches.get(created.batchId);
    if ($("create-start").checked && batch) await guarded(batch, "start", () => start(batch));
  } catch (error) {
    message.textContent = error.message;
  } finally {
    submit.disabled = false;
  }
}

async function togglePause() {
  const path = state.status && state.status.paused ? "/api/resume" : "/api/pause";
  state.requests.add("pause");
  invalidate();
  try {
    state.status = await state.api.json("POST", path);
    showMessage("");
  } catch (error) {
    showMessage(error.message);
  } finally {
    state.requests.delete("pause");
    invalidate();
  }
}

// --- wiring ------------------------------------------------------------------------

function wire() {
  document.querySelector("#batches tbody").addEventListener("click", (event) => {
    const target = event.target.closest("button[data-action]");
    if (!target) return;
    const batch = state.batches.get(target.dataset.batch);
    const action = batchActions[target.dataset.action];
    if (batch && action) guarded(batch, target.dataset.action, () => action(batch));
  });
  document.querySelector("#jobs tbody").addEventListener("click", (event) => {
    const target = event.target.closest("button[data-job-action]");
    if (target) jobAction(target.dataset.jobAction, target.dataset.job);
  });
  $("create-form").addEventListener("submit", createBatch);
  $("pause-toggle").addEventListener("click", togglePause);
  $("batches-prev").addEventListener("click", () => {
    state.page = Math.max(0, state.page - 1);
    invalidate();
  });
  $("batches-next").addEventListener("click", () => {
    state.page += 1;
    invalidate();
  });
  $("jobs-state").addEventListener("change", (event) => {
    state.jobs.state = event.target.value;
    loadJobs(null);
  });
  $("jobs-first").addEventListener("click", () => loadJobs(null));
  $("jobs-next").addEventListener("click", () => loadJobs(state.jobs.next));
  $("jobs-reload").addEventListener("click", () => loadJobs(state.jobs.cursor));
}

async function loadTypes() {
  if (!(await state.api.has("/api/types", "get"))) return;
  const body = await state.api.json("GET", "/api/types");
  $("create-type").replaceChildren(
    ...body.types.map((name) => {
      const option = document.createElement("option");
      option.value = option.textContent = name;
      return option;
    }),
  );
}

async function main() {
  state.api = new Api(askToken);
  wire();
  const live = new Live({
    onFrames,
    onState: (on) => {
      state.live = on;
      invalidate();
    },
    onUnauthorized: () => state.api.newToken("The live feed refused the token."),
  });
  try {
    await loadStatus();
  } catch (error) {
    showMessage(error.message);
  }
  live.connect();
  try {
    const [jobActions, schedules] = await Promise.all([
      state.api.has("/api/jobs/{jobId}/retry", "post"),
      state.api.has("/api/schedules", "get"),
    ]);
    state.features.jobActions = jobActions;
    state.schedulesKnown = schedules;
    await Promise.all([loadBatches(), loadTypes(), schedules ? loadStatus() : null]);
  } catch (error) {
    showMessage(error.message);
  }
  every(STATUS_EVERY_MS, loadStatus);
  every(LIST_EVERY_MS, loadBatches);
  every(CHILD_EVERY_MS, loadChildren);
  // Countdowns (ETA, Retry-After) move every second.
  setInterval(() => {
    const now = Date.now();
    let ticking = false;
    for (const batch of state.batches.values()) {
      if (batch.retryAt !== null && batch.retryAt <= now - 1000) batch.retryAt = null;
      ticking = ticking || batch.running || batch.retryAt !== null;
    }
    if (ticking) invalidate();
  }, 1000);
}

main();
