// The dashboard's model: batches as the API and the live feed describe
// them. Nothing here touches the DOM or the network; `hooks` reach out.

const LOG_LIMIT = 200;
const RATE_WINDOW_MS = 5000;
const ENDING_MS = 3000;

export function blankBatch(batchId) {
  return {
    batchId,
    type: "",
    running: false,
    engineId: null,
    counts: { pending: 0, active: 0, completed: 0, failed: 0 },
    etaAt: null,
    child: null,
    createdAt: "",
    samples: [],
    rate: null,
    requests: new Set(),
    notice: null,
    retryAt: null,
    endedAt: null,
  };
}

export function sortOrder(state) {
  state.order = [...state.batches.values()]
    .sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0))
    .map((b) => b.batchId);
}

// The batch as the server sees it now; `hooks.refresh(id)` asks again.
export function takeView(state, view, hooks) {
  let batch = state.batches.get(view.batchId);
  const isNew = !batch;
  if (isNew) {
    batch = blankBatch(view.batchId);
    state.batches.set(view.batchId, batch);
  }
  batch.type = view.type;
  // A run's end is published just before the store lets go of it: an
  // answer read in between still says running; ask again shortly.
  if (view.running && batch.endedAt !== null && Date.now() - batch.endedAt < ENDING_MS) {
    setTimeout(() => hooks.refresh(view.batchId), 300);
    view = { ...view, running: false, engineId: null };
  }
  batch.running = view.running;
  batch.engineId = view.engineId;
  batch.counts = { ...view.counts };
  batch.createdAt = view.createdAt || batch.createdAt;
  if ("child" in view) batch.child = view.child;
  if ("etaSeconds" in view) setEta(batch, view.etaSeconds);
  if (isNew) sortOrder(state);
  return batch;
}

function setEta(batch, seconds) {
  batch.etaAt = typeof seconds === "number" ? Date.now() + seconds * 1000 : null;
}


function noteRate(batch, finished) {
  const now = Date.now();
  batch.samples.push([now, finished]);
  while (batch.samples.length > 2 && now - batch.samples[0][0] > RATE_WINDOW_MS) batch.samples.shift();
  const [t0, n0] = batch.samples[0];
  batch.rate = now > t0 ? ((finished - n0) * 1000) / (now - t0) : batch.rate;
}

// One line of the event log.
export function describe(frame) {
  const d = frame.data;
  switch (frame.event) {
    case "job:progress":
      if (d.status === "failed") return `job ${d.jobId} failed: ${d.error}`;
      if (d.status === "completed") return `job ${d.jobId} completed`;
      return `job ${d.jobId} active ${Math.round(d.progress)} %`;
    case "job:retrying":
      return `job ${d.jobId} failed (${d.error}), retried later`;
    case "processing:progress":
      return `${d.completed} completed, ${d.failed} failed of ${d.total}`;
    case "done":
      return `run done: ${d.completed} completed, ${d.failed} failed`;
    case "error":
      return `run error: ${d.error}`;
    default:
      return frame.event;
  }
}

// Applies one live frame to the state; `hooks.refresh(id)` asks the server
// for a batch again, `hooks.reloadJobs()` for the open page of jobs.
export function applyFrame(state, frame, hooks) {
  const d = frame.data;
  if (!d || typeof d.batchId !== "string") return;
  let batch = state.batches.get(d.batchId);
  if (!batch) {
    batch = blankBatch(d.batchId);
    state.batches.set(d.batchId, batch);
    batch.createdAt = new Date().toISOString();
    sortOrder(state);
    hooks.refresh(d.batchId);
  }
  if (d.batchId === state.selected) {
    state.log.unshift(`#${frame.seq} ${describe(frame)}`);
    if (state.log.length > LOG_LIMIT) state.log.length = LOG_LIMIT;
    state.logVersion += 1;
  }
  switch (frame.event) {
    case "processing:started":
      batch.running = true;
      batch.endedAt = null;
      batch.samples = [];
      batch.rate = null;
      noteRate(batch, batch.counts.completed + batch.counts.failed);
      hooks.refresh(d.batchId);
      break;
    case "processing:progress": {
      // The rest of the total splits into pending and active as the
      // server last said (refreshed every few seconds while running).
      const c = batch.counts;
      const rest = Math.max(0, d.total - d.completed - d.failed);
      c.completed = d.completed;
      c.failed = d.failed;
      c.active = Math.min(c.active, rest);
      c.pending = rest - c.active;
      if ("etaSeconds" in d) setEta(batch, d.etaSeconds);
      noteRate(batch, d.completed + d.failed);
      break;
    }
    case "job:progress":
      // The open page of jobs follows them (at most one reload per half second).
      if (d.status !== "active" && d.batchId === state.selected) hooks.reloadJobs();
      break;
    case "done":
    case "error":
      if (frame.event === "error" && d.restarting) break;
      batch.running = false;
      batch.endedAt = Date.now();
      batch.etaAt = null;
      hooks.refresh(d.batchId);
      if (d.batchId === state.selected) hooks.reloadJobs();
      break;
    default:
      break;
  }
}

