// The websocket session: login or resume, sequence tracking, reconnect with backoff.
// Every message from a stream carries `seq`; one already seen is ignored, so a replay after a
// reconnect never shows anything twice. The token and the last seq live in sessionStorage so a
// page reload resumes too.
import { setServerTime } from "./format.js";

const RESUME_ERRORS = new Set(["token_invalid", "token_expired"]);

export class Connection {
  constructor({ storageKey, onMessage, onStatus, onAuth, onLoggedOut }) {
    this.key = storageKey;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.onAuth = onAuth;
    this.onLoggedOut = onLoggedOut;
    this.ws = null;
    this.nextId = 1;
    this.pending = new Map();
    this.retry = 0;
    this.stopped = false;
    this.live = false; // true once this page has a snapshot to build on
    this.state = this.load();
  }

  load() {
    try {
      return JSON.parse(sessionStorage.getItem(this.key) || "{}");
    } catch {
      return {};
    }
  }

  save() {
    sessionStorage.setItem(this.key, JSON.stringify(this.state));
  }

  hasSession() {
    return Boolean(this.state.token);
  }

  connect() {
    this.stopped = false;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws`);
    this.ws = ws;
    this.onStatus("connecting");
    ws.addEventListener("message", (event) => this.receive(event.data));
    ws.addEventListener("close", () => this.closed(ws));
  }

  closed(ws) {
    if (ws !== this.ws) return;
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(new Error("connection lost"));
    }
    this.pending.clear();
    if (this.stopped) {
      this.onStatus("offline");
      return;
    }
    this.onStatus("reconnecting");
    const delay = Math.min(5000, 300 * 2 ** this.retry++);
    setTimeout(() => this.connect(), delay);
  }

  receive(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg.type === "hello") {
      setServerTime(msg.server_time);
      this.retry = 0;
      this.onStatus("online");
      if (this.state.token) {
        // A freshly loaded page holds no state yet: without the stream id the server sends a
        // snapshot. A reconnect within the page's life asks only for what it missed.
        const replay = this.live && this.state.stream;
        this.request("resume", { token: this.state.token, last_seq: replay ? this.state.lastSeq || 0 : 0,
                                 ...(replay ? { stream: this.state.stream } : {}) })
          .then((reply) => {
            if (reply.type === "error" && RESUME_ERRORS.has(reply.code)) this.forget();
          })
          .catch(() => {});
      } else {
        this.onLoggedOut();
      }
      return;
    }
    if (typeof msg.seq === "number") {
      if (msg.type === "snapshot") {
        this.state.stream = msg.stream;
        this.live = true;
      } else if (msg.seq <= (this.state.lastSeq || 0)) {
        return; // already seen before a reconnect
      }
      this.state.lastSeq = msg.seq;
      this.save();
    }
    if (msg.type === "auth_ok") {
      this.state.token = msg.token;
      this.save();
      this.onAuth(msg);
    }
    const waiter = msg.re !== undefined ? this.pending.get(msg.re) : undefined;
    if (waiter) {
      clearTimeout(waiter.timer);
      this.pending.delete(msg.re);
      waiter.resolve(msg);
    }
    this.onMessage(msg);
  }

  request(type, fields = {}) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
        reject(new Error("offline"));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error("timeout"));
      }, 15000);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ v: 1, type, id, ...fields }));
    });
  }

  login(username, password) {
    this.live = false;
    this.state = {};
    this.save();
    return this.request("auth", { username, password });
  }

  forget() {
    this.state = {};
    this.save();
    this.onLoggedOut();
  }

  async logout() {
    try {
      await this.request("logout");
    } catch {
      // the session ends on the server anyway when the token expires
    }
    this.stopped = true;
    this.forget();
    this.connect(); // a fresh, unauthenticated connection for the next login
  }
}
