// The BullMQ side of the batchyard bench: one measurement per run, its
// result as one JSON line on stdout. The producer and the worker share this
// process (BullMQ's in-process worker), both on ioredis connections.
//
//   node bench.mjs '{"mode": "drain" | "latency", "nodeDir": ..., "redisUrl": ..., ...}'
//
// drain: fill the queue with `jobs` jobs (addBulk, timed), then start a
// worker of `concurrency` (with `limiter` when `limit` is set) and time the
// first job's start to the last job's end, as the worker saw them.
// latency: on a ready, idle worker, `runs` times: add one job and time the
// add call to the processor's start.
import { createRequire } from "node:module";

const config = JSON.parse(process.argv[2]);
const require = createRequire(`${config.nodeDir}/package.json`);
const { Queue, Worker } = require("bullmq");
const IORedis = require("ioredis");

const connect = () => new IORedis(config.redisUrl, { maxRetriesPerRequest: null });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const jobOptions = { removeOnComplete: true, removeOnFail: true };

function workerOptions() {
  const options = { connection: connect(), concurrency: config.concurrency, autorun: true };
  if (config.limit) options.limiter = { max: config.limit, duration: config.windowMs };
  return options;
}

async function drain(queue) {
  const jobs = Array.from({ length: config.jobs }, () => ({
    name: "job",
    data: { seconds: config.seconds },
    opts: jobOptions,
  }));
  const began = performance.now();
  for (let first = 0; first < jobs.length; first += 1000) {
    await queue.addBulk(jobs.slice(first, first + 1000));
  }
  const submitSeconds = (performance.now() - began) / 1000;
  let firstStart = null;
  let finished = 0;
  const starts = [];
  let resolveDone;
  const done = new Promise((resolve) => (resolveDone = resolve));
  const worker = new Worker(
    config.queue,
    async (job) => {
      const now = performance.now();
      if (firstStart === null) firstStart = now;
      if (config.limit) starts.push(now / 1000);
      if (job.data.seconds) await sleep(job.data.seconds * 1000);
      finished += 1;
      if (finished === config.jobs) resolveDone(performance.now());
    },
    workerOptions(),
  );
  const end = await done;
  await worker.close();
  return { submitSeconds, seconds: (end - firstStart) / 1000, starts };
}

async function latency(queue) {
  let onStart = null;
  const worker = new Worker(
    config.queue,
    async () => {
      if (onStart) onStart(performance.now());
    },
    workerOptions(),
  );
  await worker.waitUntilReady();
  await sleep(200);
  const latenciesMs = [];
  for (let run = 0; run < config.runs; run += 1) {
    const started = new Promise((resolve) => (onStart = resolve));
    const began = performance.now();
    await queue.add("job", {}, jobOptions);
    latenciesMs.push((await started) - began);
    await sleep(20);
  }
  await worker.close();
  return { latenciesMs };
}

const queue = new Queue(config.queue, { connection: connect() });
await queue.obliterate({ force: true });
const result = config.mode === "latency" ? await latency(queue) : await drain(queue);
await queue.close();
console.log(JSON.stringify(result));
process.exit(0);
