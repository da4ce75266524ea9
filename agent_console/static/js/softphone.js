// The console's own phone: a SIP user agent over a websocket (RFC 7118) with WebRTC audio, built on JsSIP
// (vendor/jssip, served by the CTI itself). It registers with the account the server hands this agent's
// console, rings and answers the agent leg, mutes, sends DTMF (RFC 4733), plays to the chosen speaker and
// measures the call's quality. Hold and hang-up stay the server's (so the ACD and the journal know): the PBX
// then ends the leg itself. JsSIP reconnects after a network loss and registers again.
/* global JsSIP */

const QUALITY_EVERY_MS = 2000;
const RING_ON_MS = 1000;
const RING_OFF_MS = 2000;

export class Softphone {
  constructor({ onState, onIncoming, onSession, onQuality }) {
    this.onState = onState; // (state, detail): "registered" | "unregistered" | "failed"
    this.onIncoming = onIncoming; // (session): return "answer", "ring" or a refusal reason
    this.onSession = onSession; // (what): "ringing" | "answered" | "ended"
    this.onQuality = onQuality; // ({loss_pct, jitter_ms, rtt_ms, level, grade})
    this.ua = null;
    this.account = null;
    this.session = null;
    this.state = "unregistered";
    this.detail = "";
    this.micId = localStorage.getItem("cti.phone.mic") || "";
    this.speakerId = localStorage.getItem("cti.phone.speaker") || "";
    this.audio = null;
    this.ring = null;
    this.qualityTimer = null;
    this.stats = { packetsReceived: 0, bytesReceived: 0, packetsSent: 0, bytesSent: 0, audioLevel: 0,
                   packetsLost: 0, jitter: 0, rtt: null };
    this.digitsSent = "";
    window.addEventListener("online", () => this.ua && !this.ua.isConnected() && this.ua.start());
  }

  get registered() {
    return this.state === "registered";
  }

  get ringing() {
    return Boolean(this.session && !this.session.isEstablished() && !this.session.isEnded());
  }

  get inCall() {
    return Boolean(this.session && this.session.isEstablished());
  }

  report(state, detail = "") {
    if (this.state === state && this.detail === detail) return;
    this.state = state;
    this.detail = detail;
    this.onState(state, detail);
  }

  // The microphone first: a console that cannot hear the agent must not take calls.
  async checkMicrophone() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return "no_microphone";
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: this.micConstraint() });
      for (const track of stream.getTracks()) track.stop();
      return "";
    } catch (err) {
      if (err && (err.name === "NotAllowedError" || err.name === "SecurityError")) return "permission_denied";
      return "no_microphone";
    }
  }

  micConstraint() {
    return this.micId ? { deviceId: { exact: this.micId } } : true;
  }

  async start(account) {
    this.stop();
    this.account = account;
    const problem = await this.checkMicrophone();
    if (problem) {
      this.report("failed", problem);
      return;
    }
    const socket = new JsSIP.WebSocketInterface(account.ws_url);
    this.ua = new JsSIP.UA({
      sockets: [socket], uri: account.uri, authorization_user: account.username, password: account.password,
      register: true, register_expires: account.register_expires_s, session_timers: false,
      connection_recovery_min_interval: 1, connection_recovery_max_interval: 10, user_agent: "CTI agent console",
    });
    this.ua.on("registered", () => this.report("registered"));
    this.ua.on("unregistered", () => this.report("unregistered"));
    this.ua.on("registrationFailed", (e) => {
      const auth = e.cause === JsSIP.C.causes.AUTHENTICATION_ERROR || e.cause === JsSIP.C.causes.REJECTED;
      this.report("failed", auth ? "auth_failed" : "network");
    });
    this.ua.on("disconnected", () => this.report("failed", "network"));
    this.ua.on("newRTCSession", (e) => this.incoming(e));
    this.ua.start();
  }

  stop() {
    this.stopRing();
    if (this.session && !this.session.isEnded()) {
      try { this.session.terminate(); } catch { /* already going */ }
    }
    this.session = null;
    if (this.ua) {
      const ua = this.ua;
      this.ua = null;
      ua.removeAllListeners();
      ua.stop(); // unregisters (Expires 0), then closes the websocket
    }
    this.account = null;
    this.report("unregistered");
  }

  incoming(e) {
    if (e.originator !== "remote") return;
    const session = e.session;
    if (this.session && !this.session.isEnded()) {
      session.terminate({ status_code: 486, reason_phrase: "Busy Here" });
      return;
    }
    const verdict = this.onIncoming(session);
    if (verdict !== "answer" && verdict !== "ring") {
      session.terminate({ status_code: 480, reason_phrase: "Temporarily Unavailable" });
      return;
    }
    this.session = session;
    session.on("peerconnection", (p) => this.attach(p.peerconnection));
    session.on("confirmed", () => {
      this.stopRing();
      this.startQuality();
      this.onSession("answered");
    });
    const ended = () => {
      if (this.session !== session) return;
      this.stopRing();
      this.stopQuality();
      this.session = null;
      this.onSession("ended");
    };
    session.on("ended", ended);
    session.on("failed", ended);
    this.onSession("ringing");
    if (verdict === "answer") this.answer();
    else this.startRing();
  }

  attach(pc) {
    pc.addEventListener("track", (event) => {
      const audio = this.audioElement();
      audio.srcObject = event.streams[0] || new MediaStream([event.track]);
      audio.play().catch(() => {});
    });
  }

  audioElement() {
    if (!this.audio) {
      this.audio = document.getElementById("remote-audio") || document.createElement("audio");
      this.audio.autoplay = true;
    }
    if (this.speakerId && this.audio.setSinkId) this.audio.setSinkId(this.speakerId).catch(() => {});
    return this.audio;
  }

  answer() {
    if (!this.ringing) return false;
    this.stopRing();
    const ice = (this.account && this.account.ice_servers) || [];
    this.session.answer({
      mediaConstraints: { audio: this.micConstraint(), video: false },
      pcConfig: { iceServers: ice.map((url) => ({ urls: url })), rtcpMuxPolicy: "require" },
    });
    return true;
  }

  mute(on) {
    if (!this.inCall) return;
    if (on) this.session.mute({ audio: true });
    else this.session.unmute({ audio: true });
  }

  get muted() {
    return Boolean(this.inCall && this.session.isMuted().audio);
  }

  dtmf(digit) {
    if (!this.inCall) return false;
    this.session.sendDTMF(digit, { transportType: JsSIP.C.DTMF_TRANSPORT.RFC2833, duration: 120 });
    this.digitsSent += digit;
    return true;
  }

  async devices() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return { mics: [], speakers: [] };
    const all = await navigator.mediaDevices.enumerateDevices();
    return { mics: all.filter((d) => d.kind === "audioinput"), speakers: all.filter((d) => d.kind === "audiooutput") };
  }

  chooseMic(id) {
    this.micId = id;
    localStorage.setItem("cti.phone.mic", id);
  }

  chooseSpeaker(id) {
    this.speakerId = id;
    localStorage.setItem("cti.phone.speaker", id);
    if (this.audio && this.audio.setSinkId) this.audio.setSinkId(id).catch(() => {});
  }

  // ------------------------------------------------------------------ the ring: made here, no sound file

  startRing() {
    if (this.ring) return;
    try {
      const ctx = new AudioContext();
      const gain = ctx.createGain();
      gain.gain.value = 0;
      gain.connect(ctx.destination);
      for (const hz of [440, 480]) {
        const osc = ctx.createOscillator();
        osc.frequency.value = hz;
        osc.connect(gain);
        osc.start();
      }
      let on = false;
      const flip = () => {
        on = !on;
        gain.gain.value = on ? 0.1 : 0;
        this.ring.timer = setTimeout(flip, on ? RING_ON_MS : RING_OFF_MS);
      };
      this.ring = { ctx, timer: null };
      flip();
    } catch {
      this.ring = null; // no audio output: the banner still shows the call
    }
    document.body.dataset.phoneRinging = "true";
  }

  stopRing() {
    delete document.body.dataset.phoneRinging;
    if (!this.ring) return;
    clearTimeout(this.ring.timer);
    this.ring.ctx.close().catch(() => {});
    this.ring = null;
  }

  // ------------------------------------------------------------------ call quality from getStats

  startQuality() {
    this.stopQuality();
    this.qualityTimer = setInterval(() => this.measure(), QUALITY_EVERY_MS);
    this.measure();
  }

  stopQuality() {
    clearInterval(this.qualityTimer);
    this.qualityTimer = null;
  }

  async measure() {
    const pc = this.session && this.session.connection;
    if (!pc) return null;
    const report = await pc.getStats();
    const s = { packetsReceived: 0, bytesReceived: 0, packetsSent: 0, bytesSent: 0, audioLevel: 0, packetsLost: 0,
                jitter: 0, rtt: null };
    report.forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "audio") {
        s.packetsReceived += r.packetsReceived || 0;
        s.bytesReceived += r.bytesReceived || 0;
        s.packetsLost += Math.max(0, r.packetsLost || 0);
        s.jitter = Math.max(s.jitter, r.jitter || 0);
        s.audioLevel = Math.max(s.audioLevel, r.audioLevel || 0);
      } else if (r.type === "outbound-rtp" && r.kind === "audio") {
        s.packetsSent += r.packetsSent || 0;
        s.bytesSent += r.bytesSent || 0;
      } else if (r.type === "remote-inbound-rtp" && r.roundTripTime !== undefined) {
        s.rtt = r.roundTripTime;
      } else if (r.type === "candidate-pair" && r.nominated && r.currentRoundTripTime !== undefined && s.rtt === null) {
        s.rtt = r.currentRoundTripTime;
      }
    });
    this.stats = s;
    const total = s.packetsReceived + s.packetsLost;
    const loss = total ? (100 * s.packetsLost) / total : 0;
    const jitterMs = s.jitter * 1000;
    const rttMs = s.rtt === null ? null : s.rtt * 1000;
    // ITU-T G.114-ish bands: one-way delay past 150 ms and loss past 1 % are heard.
    const grade = loss > 5 || jitterMs > 60 || (rttMs !== null && rttMs > 400) ? "poor"
      : loss > 1 || jitterMs > 30 || (rttMs !== null && rttMs > 300) ? "fair" : "good";
    const quality = { loss_pct: loss, jitter_ms: jitterMs, rtt_ms: rttMs, level: s.audioLevel, grade };
    this.onQuality(quality);
    return quality;
  }
}
