// Drawing the state into the page. Called at most once per animation frame
// (app.js schedules it); every function here only writes the DOM, and
// reuses the rows it drew before so that focus and scroll stay put.

export const PAGE_SIZE = 50;

const $ = (id) => document.getElementById(id);

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function element(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text) node.textContent = text;
  return node;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function mebibytes(bytes) {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

function short(value, limit = 80) {
  const text = value === undefined ? "" : JSON.stringify(value);
  return text.length > limit ? `${text.slice(0, limit - 1)}…` : text;
}

function stateText(batch, status) {
  if (!batch.running) return "■ idle";
  const here = status && batch.engineId === status.engineId;
  const paused = here && status.paused ? " (paused)" : "";
  return `▶ running on ${batch.engineId || "an engine"}${paused}`;
}

function button(action, batchId, label, describedBy) {
  const node = element("button", { type: "button", "data-action": action, "data-batch": batchId });
  node.textContent = label;
  node.setAttribute("aria-describedby", describedBy);
  return node;
}

function newRow(batch) {
  const id = batch.batchId;
  const tr = element("tr");
  const nameCell = element("th", { scope: "row" });
  const open = button("open", id, id, `type-${id}`);
  open.classList.add("link");
  const type = element("span", { id: `type-${id}`, class: "muted" });
  nameCell.append(open, element("br"), type);
  const bar = element("progress", { "aria-label": `progress of ${id}` });
  const barText = element("span");
  const progressCell = element("td", { class: "progress" });
  progressCell.append(bar, " ", barText);
  const cells = {
    state: element("td"),
    counts: element("td", { class: "num" }),
    rate: element("td", { class: "num" }),
    eta: element("td", { class: "num" }),
    child: element("td"),
  };
  const notice = element("p", { class: "notice", role: "status", id: `notice-${id}` });
  const actions = element("td", { class: "actions" });
  const buttons = {
    start: button("start", id, "Start", `notice-${id}`),
    cancel: button("cancel", id, "Cancel", `notice-${id}`),
    retry: button("retry", id, "Retry failed", `notice-${id}`),
    remove: button("delete", id, "Delete", `notice-${id}`),
  };
  actions.append(...Object.values(buttons), notice);
  tr.append(nameCell, cells.state, progressCell, cells.counts, cells.rate, cells.eta, cells.child);
  tr.append(actions);
  tr.dataset.batch = id;
  return { tr, type, bar, barText, cells, buttons, notice };
}

function updateRow(row, batch, status, now) {
  const c = batch.counts;
  const done = c.completed + c.failed;
  const total = done + c.pending + c.active;
  setText(row.type, batch.type);
  setText(row.cells.state, stateText(batch, status));
  row.bar.max = Math.max(total, 1);
  row.bar.value = done;
  const percent = total ? Math.floor((done * 100) / total) : 0;
  setText(row.barText, `${done} / ${total} (${percent} %)`);
  setText(row.cells.counts, `${c.pending} · ${c.active} · ${c.completed} · ${c.failed}`);
  let rate = "—";
  if (batch.running) rate = batch.rate === null ? "measuring" : `${batch.rate.toFixed(1)} jobs/s`;
  setText(row.cells.rate, rate);
  const eta = batch.running && batch.etaAt !== null ? (batch.etaAt - now) / 1000 : null;
  setText(row.cells.eta, duration(eta));
  const child = batch.child;
  setText(
    row.cells.child,
    child && batch.running
      ? `pid ${child.pid} · ${mebibytes(child.rssBytes)} · CPU ${child.cpuSeconds.toFixed(1)} s · ${child.jobsRun} jobs`
      : "—",
  );
  const pending = batch.requests;
  const waiting = batch.retryAt !== null && batch.retryAt > now;
  row.buttons.start.disabled = batch.running || pending.has("start") || waiting;
  row.buttons.cancel.disabled = !batch.running || pending.has("cancel");
  row.buttons.retry.disabled = c.failed === 0 || pending.has("retry");
  row.buttons.remove.disabled = batch.running || pending.has("delete");
  let notice = batch.notice ? batch.notice.text : "";
  if (waiting) notice += ` — start again in ${Math.ceil((batch.retryAt - now) / 1000)} s`;
  setText(row.notice, notice);
  row.notice.className = `notice ${batch.notice ? batch.notice.kind : ""}`;
  row.tr.classList.toggle("selected", false);
}

export function renderBatches(state, rows, now) {
  const pages = Math.max(1, Math.ceil(state.order.length / PAGE_SIZE));
  state.page = Math.min(state.page, pages - 1);
  const ids = state.order.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE);
  const body = document.querySelector("#batches tbody");
  const wanted = [];
  for (const id of ids) {
    const batch = state.batches.get(id);
    let row = rows.get(id);
    if (!row) {
      row = newRow(batch);
      rows.set(id, row);
    }
    updateRow(row, batch, state.status, now);
    row.tr.classList.toggle("selected", id === state.selected);
    wanted.push(row.tr);
  }
  for (const id of rows.keys()) if (!state.batches.has(id)) rows.delete(id);
  const current = body.children;
  const same = current.length === wanted.length && wanted.every((tr, i) => current[i] === tr);
  if (!same) body.replaceChildren(...wanted);
  const running = state.order.filter((id) => state.batches.get(id).running).length;
  setText($("batches-summary"), `${state.order.length} batches, ${running} running.`);
  setText($("batches-page"), `page ${state.page + 1} of ${pages}`);
  $("batches-prev").disabled = state.page === 0;
  $("batches-next").disabled = state.page >= pages - 1;
}

export function renderStatus(state) {
  const status = state.status;
  const live = $("live-state");
  setText(live, state.live ? "● live" : "○ offline");
  live.classList.toggle("on", state.live);
  const toggle = $("pause-toggle");
  if (!status) return;
  const paused = status.paused ? " · paused" : "";
  const draining = status.isShuttingDown ? " · shutting down" : "";
  setText(
    $("engine-status"),
    `${status.engineId}: ${status.activeBatches} of ${status.maxBatches} batches running${paused}${draining}`,
  );
  setText(toggle, status.paused ? "Resume engine" : "Pause engine");
  toggle.setAttribute("aria-pressed", String(status.paused));
  toggle.disabled = state.requests.has("pause");
  const health = state.health;
  if (health) {
    const services = Object.entries(health.services || {}).map(([k, v]) => `${k} ${v}`);
    const mark = health.status === "ok" ? "✓" : "⚠";
    setText($("health"), `Health: ${mark} ${health.status} (${services.join(", ")})`);
  }
  const engines = document.querySelector("#engines tbody");
  engines.replaceChildren(
    ...(status.engines || []).map((e) => {
      const tr = element("tr");
      const me = e.engineId === status.engineId ? " (this one)" : "";
      for (const text of [
        `${e.engineId}${me}`,
        e.host,
        String(e.pid),
        `${e.runningBatches.length} of ${e.maxBatches}`,
        when(e.lastSeen),
      ]) {
        tr.append(element("td", {}, text));
      }
      return tr;
    }),
  );
}

export function renderSchedules(state) {
  const section = $("schedules-section");
  section.hidden = state.schedules === null;
  if (state.schedules === null) return;
  document.querySelector("#schedules tbody").replaceChildren(
    ...state.schedules.map((s) => {
      const tr = element("tr");
      for (const text of [s.name, s.cron, s.type, when(s.nextRunAt), when(s.lastRunAt)]) {
        tr.append(element("td", {}, text));
      }
      return tr;
    }),
  );
}

function jobRow(job, features) {
  const tr = element("tr");
  const id = element("td", {}, job.jobId);
  const state = element("td", {}, job.state);
  const attempts = element("td", { class: "num" }, String(job.attempts));
  const payload = element("td", { class: "code", title: JSON.stringify(job.payload) }, short(job.payload, 60));
  const outcome = element("td");
  if (job.error) outcome.append(element("span", { class: "error" }, `✗ ${job.error}`));
  else if (job.state === "completed") outcome.textContent = `✓ ${short(job.result)}`;
  const actions = element("td", { class: "actions" });
  if (features.jobActions) {
    const retry = element("button", { type: "button", "data-job-action": "retry", "data-job": job.jobId }, "Retry");
    retry.setAttribute("aria-label", `retry job ${job.jobId}`);
    retry.disabled = job.state !== "failed";
    const cancel = element("button", { type: "button", "data-job-action": "cancel", "data-job": job.jobId }, "Cancel");
    cancel.setAttribute("aria-label", `cancel job ${job.jobId}`);
    cancel.disabled = job.state === "completed" || job.state === "failed";
    actions.append(retry, cancel);
  }
  tr.append(id, state, attempts, payload, outcome, actions);
  return tr;
}

export function renderDetail(state) {
  const detail = $("detail");
  detail.hidden = state.selected === null;
  if (state.selected === null) return;
  setText($("detail-heading"), `Batch ${state.selected}`);
  const jobs = state.jobs;
  if (jobs.drawn !== jobs.version) {
    jobs.drawn = jobs.version;
    const body = document.querySelector("#jobs tbody");
    const rows = jobs.list.map((job) => jobRow(job, state.features));
    if (jobs.error) rows.unshift(element("tr", {}, jobs.error));
    else if (!rows.length) rows.push(element("tr", {}, "No jobs in this state."));
    body.replaceChildren(...rows);
    $("jobs-next").disabled = jobs.next === null;
    $("jobs-first").disabled = jobs.cursor === null;
  }
  if (state.logDrawn !== state.logVersion) {
    state.logDrawn = state.logVersion;
    const lines = state.log.map((line) => element("li", {}, line));
    $("event-log").replaceChildren(...lines);
    $("event-log-empty").hidden = lines.length > 0;
  }
}
