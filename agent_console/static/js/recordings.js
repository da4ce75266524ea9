// Recordings and the voicemail inbox, for both consoles: the recording controls of the agent's current
// call (record, pause for a card payment, resume, stop), the recorded calls one may hear, and the
// voicemails (supervisors assign them; the agent they are given to plays them and marks them done).
// Audio plays in an <audio> element from a short-lived URL the server hands out after checking the
// right and auditing the playback; the page never names a file, only call ids.
import { clear, el } from "./dom.js";
import { duration } from "./format.js";
import { currentLang, onLangChange } from "./i18n.js";

const STRINGS = {
  en: {
    recordings: "Recorded calls",
    voicemails: "Voicemails",
    refresh: "Refresh",
    play: "Play",
    done: "Done",
    assign: "Assign",
    assign_to: "assign to…",
    none_recordings: "No recorded calls.",
    none_voicemails: "No voicemails.",
    unknown_caller: "unknown caller",
    record: "Record",
    pause: "Pause (card payment)",
    resume: "Resume recording",
    stop: "Stop recording",
    "state.none": "not recorded",
    "state.recording": "● recording",
    "state.paused": "❚❚ recording paused",
    "state.stopped": "recording stopped",
    "state.ended": "not recorded",
    "vm.new": "new",
    "vm.assigned": "assigned to {agent}",
    "vm.done": "done ({by})",
    playing: "Playing {what} · {seconds} · this playback is in the audit log",
    loaded: "Loaded {what}: {seconds} long · this playback is in the audit log",
    "err.not_your_call": "You did not take that call.",
    "err.not_yours": "That voicemail is not assigned to you.",
    "err.no_recording": "No recording for that call (or it was deleted).",
    "err.not_recorded": "Calls of this queue are not recorded.",
    "err.invalid_state": "Not possible now.",
    "err.already_done": "Already done.",
    "err.forbidden": "Your role may not do that.",
    "err.offline": "Not connected.",
    when: "When",
    caller: "Caller",
    agent: "Agent",
    talk: "Talk",
    status: "Status",
    actions: "Actions",
  },
  zh: {
    recordings: "通话录音",
    voicemails: "语音留言",
    refresh: "刷新",
    play: "播放",
    done: "已处理",
    assign: "分配",
    assign_to: "分配给…",
    none_recordings: "没有通话录音。",
    none_voicemails: "没有语音留言。",
    unknown_caller: "未知来电",
    record: "录音",
    pause: "暂停录音（银行卡支付）",
    resume: "恢复录音",
    stop: "停止录音",
    "state.none": "未录音",
    "state.recording": "● 正在录音",
    "state.paused": "❚❚ 录音已暂停",
    "state.stopped": "录音已停止",
    "state.ended": "未录音",
    "vm.new": "新留言",
    "vm.assigned": "已分配给 {agent}",
    "vm.done": "已处理（{by}）",
    playing: "正在播放 {what} · {seconds} · 本次播放已记入审计日志",
    loaded: "已加载 {what}：时长 {seconds} · 本次播放已记入审计日志",
    "err.not_your_call": "这通电话不是您接听的。",
    "err.not_yours": "这条留言没有分配给您。",
    "err.no_recording": "这通电话没有录音（或已删除）。",
    "err.not_recorded": "该队列的通话不录音。",
    "err.invalid_state": "当前无法执行。",
    "err.already_done": "已经处理过了。",
    "err.forbidden": "您的角色无权执行此操作。",
    "err.offline": "未连接。",
    when: "时间",
    caller: "来电",
    agent: "坐席",
    talk: "通话",
    status: "状态",
    actions: "操作",
  },
};

function tr(key, vars = {}) {
  let text = (STRINGS[currentLang()] || STRINGS.en)[key] ?? STRINGS.en[key] ?? key;
  for (const [name, value] of Object.entries(vars)) text = text.replaceAll(`{${name}}`, String(value));
  return text;
}

function when(unixSeconds) {
  const locale = currentLang() === "zh" ? "zh-CN" : "en-GB";
  return new Date(unixSeconds * 1000).toLocaleString(locale, { dateStyle: "short", timeStyle: "short" });
}

function refusal(reply) {
  if (!reply || reply.type !== "error") return "";
  const key = `err.${reply.reason || reply.code}`;
  const known = tr(key);
  return known === key ? reply.message : known;
}

export class RecordingsPanel {
  // conn: the page's Connection; role: "agent" | "supervisor" | "admin"; agents(): [[id, name], ...]
  // for the supervisor's assign menu.
  constructor({ conn, role, agents = () => [] }) {
    this.conn = conn;
    this.role = role;
    this.agents = agents;
    this.call = null;
    this.states = new Map(); // call id -> recording state pushed by the server
    this.recordings = [];
    this.voicemails = [];
    this.nodes = {};
    onLangChange(() => this.render());
  }

  // Any of the three places may be absent (a supervisor has no call controls).
  mount({ controls = null, recordings = null, voicemails = null }) {
    this.nodes = { controls, recordings, voicemails };
    this.render();
  }

  // A pushed message; true when it was ours.
  handle(msg) {
    if (msg.type === "recording_state") {
      this.states.set(msg.call_id, msg.state);
      if (msg.state === "ended") setTimeout(() => this.refresh(), 1500); // the call's history row is written
      this.renderControls();
      return true;
    }
    if (msg.type === "voicemail_assigned") {
      this.refresh();
      return true;
    }
    return false;
  }

  setCall(call) {
    const id = call && call.state !== "ringing" ? call.call_id : null;
    if (id === (this.call && this.call.call_id)) return;
    this.call = id ? call : null;
    this.renderControls();
  }

  async refresh() {
    const asks = [];
    if (this.nodes.recordings) asks.push(this.ask("recordings_list", { limit: 50 }).then((r) => {
      if (r && r.type === "result") this.recordings = r.data.recordings;
    }));
    if (this.nodes.voicemails) asks.push(this.ask("voicemail_list", { limit: 50 }).then((r) => {
      if (r && r.type === "result") this.voicemails = r.data.voicemails;
    }));
    await Promise.all(asks);
    this.render();
  }

  async ask(type, fields) {
    try {
      return await this.conn.request(type, fields);
    } catch (err) {
      return { type: "error", code: "offline", message: String(err) };
    }
  }

  render() {
    this.renderControls();
    this.renderRecordings();
    this.renderVoicemails();
  }

  // ---------------------------------------------------------------- the current call

  renderControls() {
    const box = this.nodes.controls;
    if (!box) return;
    clear(box);
    if (!this.call) return;
    const callId = this.call.call_id;
    const state = this.states.get(callId) || "none";
    const badge = el("span", { class: "badge rec-state", "data-rec": state, id: "rec-state", text: tr(`state.${state}`) });
    const error = el("span", { class: "error", id: "rec-error", role: "alert" });
    const move = async (type) => {
      const reply = await this.ask(type, { call_id: callId });
      if (reply && reply.type === "result") {
        this.states.set(callId, reply.data.state);
        this.renderControls();
      } else {
        error.textContent = refusal(reply);
      }
    };
    const button = (id, key, type, enabled) => el("button", {
      type: "button", id, text: tr(key), disabled: !enabled, onclick: () => move(type),
    });
    box.append(badge,
      button("rec-start", "record", "recording_start", state === "none" || state === "stopped"),
      button("rec-pause", "pause", "recording_pause", state === "recording"),
      button("rec-resume", "resume", "recording_resume", state === "paused"),
      button("rec-stop", "stop", "recording_stop", state === "recording" || state === "paused"),
      error);
  }

  // ---------------------------------------------------------------- lists and the player

  // The heading, the player and its status line are made once: a refresh redraws only the list, so a
  // recording being heard keeps playing.
  card(node, titleKey, listId) {
    if (!node.dataset.built) {
      node.dataset.built = "1";
      const audio = el("audio", { controls: true, preload: "metadata", id: `${listId}-audio`, class: "player", hidden: true });
      node.append(
        el("h2", {}, el("span", { class: "title" }), " ",
          el("button", { type: "button", class: "ghost", id: `${listId}-refresh`, onclick: () => this.refresh() })),
        audio,
        el("p", { class: "status", id: `${listId}-status`, role: "status" }),
        el("div", { class: "rows" }));
    }
    node.querySelector("h2 .title").textContent = tr(titleKey);
    node.querySelector("h2 button").textContent = tr("refresh");
    return { audio: node.querySelector("audio"), status: node.querySelector(".status"), rows: clear(node.querySelector(".rows")) };
  }

  async play(type, idField, id, what, audio, status) {
    status.textContent = "";
    status.dataset.kind = "";
    const reply = await this.ask(type, { [idField]: id });
    if (!reply || reply.type !== "result") {
      status.textContent = refusal(reply);
      status.dataset.kind = "error";
      return;
    }
    audio.dataset.callId = id;
    audio.onloadedmetadata = () => {
      status.textContent = tr("loaded", { what, seconds: duration(audio.duration) });
      status.dataset.kind = "ok";
    };
    audio.onplaying = () => {
      status.textContent = tr("playing", { what, seconds: duration(audio.duration) });
    };
    for (const other of document.querySelectorAll("audio")) if (other !== audio) other.pause(); // one at a time
    audio.hidden = false;
    audio.src = reply.data.url;
    audio.load();
    audio.play().catch(() => {}); // autoplay may be refused: the controls are there
  }

  renderRecordings() {
    const node = this.nodes.recordings;
    if (!node) return;
    const { audio, status, rows } = this.card(node, "recordings", "recordings");
    if (!this.recordings.length) {
      rows.append(el("p", { class: "muted", text: tr("none_recordings") }));
      return;
    }
    const body = el("tbody", { id: "recordings-list" });
    for (const r of this.recordings) {
      const who = r.customer_name || tr("unknown_caller");
      const what = `${who} ${r.caller}`;
      body.append(el("tr", { "data-call-id": r.call_id },
        el("td", { text: when(r.started_at) }),
        el("td", {}, el("strong", { text: who }), " ", el("span", { class: "muted", text: r.caller })),
        el("td", { text: r.agents.join(", ") }),
        el("td", { text: duration(r.talk_s) }),
        el("td", {}, el("button", {
          type: "button", class: "play", text: tr("play"), disabled: !r.available,
          onclick: () => this.play("recording_play", "recording_id", r.call_id, what, audio, status),
        }))));
    }
    rows.append(el("table", { class: "grid" },
      el("thead", {}, el("tr", {}, ...["when", "caller", "agent", "talk", "actions"].map((k) => el("th", { text: tr(k) })))),
      body));
  }

  renderVoicemails() {
    const node = this.nodes.voicemails;
    if (!node) return;
    const { audio, status, rows } = this.card(node, "voicemails", "voicemails");
    if (!this.voicemails.length) {
      rows.append(el("p", { class: "muted", text: tr("none_voicemails") }));
      return;
    }
    const supervising = this.role !== "agent";
    const body = el("tbody", { id: "voicemail-list" });
    for (const v of this.voicemails) {
      const who = v.customer_name || tr("unknown_caller");
      const what = `${who} ${v.caller}`;
      const state = v.status === "assigned" ? tr("vm.assigned", { agent: v.assigned_to })
        : v.status === "done" ? tr("vm.done", { by: v.done_by }) : tr("vm.new");
      const actions = el("td", { class: "actions" }, el("button", {
        type: "button", class: "play", text: tr("play"), disabled: !v.available,
        onclick: () => this.play("voicemail_play", "voicemail_id", v.call_id, what, audio, status),
      }));
      if (supervising && v.status !== "done") {
        const pick = el("select", { class: "assign", "aria-label": tr("assign") },
          el("option", { value: "", text: tr("assign_to") }),
          ...this.agents().map(([id, name]) => el("option", { value: id, text: name && name !== id ? `${name} (${id})` : id })));
        pick.addEventListener("change", async () => {
          if (!pick.value) return;
          const reply = await this.ask("voicemail_assign", { voicemail_id: v.call_id, agent_id: pick.value });
          if (reply && reply.type === "result") this.refresh();
          else status.textContent = refusal(reply);
        });
        actions.append(pick);
      }
      if (v.status !== "done") {
        actions.append(el("button", {
          type: "button", class: "ok done", text: tr("done"),
          onclick: async () => {
            const reply = await this.ask("voicemail_done", { voicemail_id: v.call_id });
            if (reply && reply.type === "result") this.refresh();
            else status.textContent = refusal(reply);
          },
        }));
      }
      body.append(el("tr", { "data-call-id": v.call_id, "data-status": v.status },
        el("td", { text: when(v.left_at) }),
        el("td", {}, el("strong", { text: who }), " ", el("span", { class: "muted", text: v.caller })),
        el("td", { text: state }),
        actions));
    }
    rows.append(el("table", { class: "grid" },
      el("thead", {}, el("tr", {}, ...["when", "caller", "status", "actions"].map((k) => el("th", { text: tr(k) })))),
      body));
  }
}
