// The live feed: one WebSocket on /ws?batch=1 (each message a JSON array of
// frames), resumed from the last seq seen after any disconnect.
//
// Frames are handed to onFrames in seq order, each seq once. A close with
// 1008 (missing or wrong token) asks for a token before reconnecting; any
// other close reconnects after a backoff that grows to MAX_BACKOFF_MS.

import { tokenOf } from "./api.js";

const MAX_BACKOFF_MS = 5000;
const POLICY_VIOLATION = 1008;

export class Live {
  constructor({ onFrames, onState, onUnauthorized }) {
    this.onFrames = onFrames;
    this.onState = onState;
    this.onUnauthorized = onUnauthorized;
    this.lastSeq = 0;
    this.backoff = 250;
    this.socket = null;
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = new URLSearchParams({ batch: "1" });
    if (this.lastSeq > 0) query.set("resumeFrom", String(this.lastSeq));
    const token = tokenOf();
    if (token) query.set("token", token);
    return `${scheme}//${location.host}/ws?${query}`;
  }

  connect() {
    const socket = new WebSocket(this.url());
    this.socket = socket;
    socket.onopen = () => {
      this.backoff = 250;
      this.onState(true);
    };
    socket.onmessage = (message) => this.receive(message.data);
    socket.onclose = (event) => {
      this.socket = null;
      this.onState(false);
      if (event.code === POLICY_VIOLATION) {
        this.onUnauthorized().then(() => this.connect());
        return;
      }
      setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
    };
  }

  receive(text) {
    let frames;
    try {
      frames = JSON.parse(text);
    } catch {
      return;
    }
    if (!Array.isArray(frames)) frames = [frames];
    const fresh = [];
    for (const frame of frames) {
      if (typeof frame.seq !== "number" || frame.seq <= this.lastSeq) continue;
      this.lastSeq = frame.seq;
      fresh.push(frame);
    }
    if (fresh.length) this.onFrames(fresh);
  }
}
