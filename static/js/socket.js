// The WebSocket to /ws/NAME: connecting (?since= and ?resume=), the connection indicator, and reconnecting with backoff.

import { ACCOUNT, BACKOFF_MS, CLOSE_CREDENTIALS_ENDED } from "./config.js";
import { ui } from "./dom.js";
import * as state from "./state.js";
import { load, resumeKey } from "./storage.js";

let ws = null;
let wantConnected = false;
let welcomed = false; // the current socket has received its welcome
let everWelcomed = false; // some socket's connect-time history completed: reconnects ask for ?since=
let resumable = false; // a connect-time history in several events was cut off: reconnects ask for ?since= too
let attempts = 0;
let retryTimer = 0;
let retryAt = 0;
let countdown = 0;
let handlers = null;

// Set once by app.js, before the first connect:
// - onEvent(ev): each event (a parsed JSON object) the current socket receives;
// - onDrop(): the current socket closed (nothing is in flight on it any more);
// - onCredentialsEnded(reason): the server ended this page's right to its name (close code 4001);
// - onRefusedMaybe(): a socket closed before its welcome: the handshake may have been refused, worth asking why.
export function init(h) {
  handlers = h;
}

// Welcomed and open: commands can be sent now.
export function isOpen() {
  return welcomed && ws !== null && ws.readyState === WebSocket.OPEN;
}

export function isWelcomed() {
  return welcomed;
}

export function send(command) {
  ws.send(JSON.stringify(command));
}

// A plain text frame (a slash command, as a terminal would type it).
export function sendText(text) {
  ws.send(text);
}

export function markWelcomed() {
  welcomed = true;
  attempts = 0;
  setConn("online");
}

// A connect-time history was cut off before its last event: reconnects ask for what follows (?since=).
export function markResumable() {
  resumable = true;
}

// The connect-time history is complete; true the first time on this page.
export function markCaughtUp() {
  const first = !everWelcomed;
  everWelcomed = true;
  return first;
}

function setConn(kind) {
  ui.conn.dataset.state = kind;
  clearInterval(countdown);
  countdown = 0;
  if (kind === "online") {
    ui.connText.textContent = "Connected";
    ui.banner.hidden = true;
  } else if (kind === "connecting") {
    ui.connText.textContent = "Connecting…";
    ui.banner.hidden = true;
  } else if (kind === "reconnecting") {
    const tick = () => {
      const left = Math.ceil((retryAt - Date.now()) / 1000);
      const when = ws ? "now" : left > 0 ? "in " + left + " s" : "now";
      ui.connText.textContent = "Reconnecting…";
      ui.bannerText.textContent = "Connection lost. Reconnecting " + when + "… Messages you write are sent once it is back.";
      ui.retryNow.hidden = Boolean(ws);
    };
    tick();
    ui.banner.hidden = false;
    countdown = setInterval(tick, 1000);
  }
  ui.app.classList.toggle("offline", kind !== "online");
}

// Stay connected as state.me() from now on (until stop()).
export function start() {
  wantConnected = true;
  connect();
}

function connect() {
  clearTimeout(retryTimer);
  retryTimer = 0;
  const me = state.me();
  if (!me || ws) return;
  let url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/" + encodeURIComponent(me);
  const query = [];
  if (everWelcomed || resumable) query.push("since=" + state.lastSeenId()); // replay all that was missed
  const resume = ACCOUNT ? null : load(resumeKey(me), null);
  if (typeof resume === "string" && resume) query.push("resume=" + encodeURIComponent(resume));
  if (query.length) url += "?" + query.join("&");
  const socket = new WebSocket(url);
  ws = socket;
  welcomed = false;
  setConn(everWelcomed || attempts > 0 ? "reconnecting" : "connecting");
  socket.addEventListener("message", (e) => {
    if (ws !== socket || typeof e.data !== "string") return;
    let ev;
    try {
      ev = JSON.parse(e.data);
    } catch (err) {
      return;
    }
    handlers.onEvent(ev);
  });
  socket.addEventListener("close", (e) => {
    if (ws !== socket) return;
    ws = null;
    const wasWelcomed = welcomed;
    if (e.code === CLOSE_CREDENTIALS_ENDED) {
      wantConnected = false;
      handlers.onCredentialsEnded(e.reason);
      return;
    }
    // Never welcomed on this page: maybe the handshake was refused (401/403); ask why rather than retry blindly.
    // (Later drops are network or server trouble; a revoked session or a registered name closes with 4001.)
    const firstTry = !everWelcomed;
    disconnected();
    // A guest also asks now and then while it keeps failing: after a long absence another guest may hold its name.
    const guestAsks = !ACCOUNT && navigator.onLine && attempts % 4 === 0;
    if (!wasWelcomed && (firstTry || guestAsks)) handlers.onRefusedMaybe();
  });
}

function disconnected() {
  welcomed = false;
  handlers.onDrop();
  if (!wantConnected) return;
  const base = BACKOFF_MS[Math.min(attempts, BACKOFF_MS.length - 1)];
  const delay = Math.round(base * (0.8 + Math.random() * 0.4));
  attempts += 1;
  retryAt = Date.now() + delay;
  retryTimer = setTimeout(connect, delay);
  setConn("reconnecting");
}

export function reconnectNow() {
  if (wantConnected && !ws) connect();
}

// Leaving: close the socket, retry no more, and start afresh on the next start().
export function stop() {
  wantConnected = false;
  clearTimeout(retryTimer);
  const socket = ws;
  ws = null;
  if (socket) socket.close(1000, "switching user");
  welcomed = false;
  everWelcomed = false;
  resumable = false;
  attempts = 0;
  setConn("connecting");
}
