// The outbox: messages written here, pending until the server's "ack" (matched by "ref"), sent again after a reconnect, or failed with Retry and Delete.
// Each carries a "client_id" of its own, kept for every retry: the server stores and delivers it once however often it is sent.

import { GROUP, MAX_MESSAGE_SIZE } from "./config.js";
import { scrollToBottom, showNotice, ui } from "./dom.js";
import { fileSize, isRoomKey, parseTs } from "./format.js";
import * as socket from "./socket.js";
import * as state from "./state.js";
import { renderConvList } from "./views/conversations.js";
import { decorate } from "./views/messageparts.js";
import { appendLast, buildMessage, insertOrdered, removeMessage, renderThreadChrome, setMessageTime, setStatus } from "./views/messages.js";

// ref -> pending message, in the order they were written. Its state: "queued" (not sent yet), "sent", "unconfirmed"
// (sent, then the socket dropped before the ack), "failed" (refused; out of this map).
const pending = new Map();

function newRef() {
  return "m" + state.nextSeq() + "." + Date.now().toString(36);
}

// 128 random bits as 32 hex digits: unique per message (crypto.randomUUID needs a secure context; this does not).
function newClientId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// The command as the server counts it against max_message_size: its JSON in UTF-8 bytes.
function sizeOf(payload) {
  return new TextEncoder().encode(JSON.stringify(payload)).length;
}

// The server would close the socket (1009) on a larger message: say so here instead of sending it.
function refuseOversize(payload) {
  const size = sizeOf(payload);
  if (size <= MAX_MESSAGE_SIZE) return false;
  showNotice("That message is too long to send (" + fileSize(size) + "; the limit is " + fileSize(MAX_MESSAGE_SIZE) + ").");
  return true;
}

// The command that sends `text` to conversation `key`: the group, a named room, or a one-to-one.
function payloadFor(key, text, ref) {
  const clientId = newClientId();
  if (key === GROUP) return { type: "message", msg: text, ref: ref, client_id: clientId };
  if (isRoomKey(key)) return { type: "message", room: key.slice(1), msg: text, ref: ref, client_id: clientId };
  return { type: "direct", to: key, msg: text, ref: ref, client_id: clientId };
}

// Send `text` to conversation `key` (default: the open one), with `extra` fields ({"reply_to": ID}); false (with a
// notice) when it is too long to send.
export function sendText(text, key, extra) {
  const c = key === undefined ? state.activeConv() : state.conversation(key);
  const ref = newRef();
  const payload = Object.assign(payloadFor(c.key, text, ref), extra || {});
  if (refuseOversize(payload)) return false;
  const t = Date.now();
  const li = buildMessage(state.me(), text, t, true);
  li.classList.add("pending");
  li.dataset.ref = ref;
  decorate(li, { user: state.me(), msg: text, reply_to: payload.reply_to }, c.key);
  appendLast(c, li);
  const p = { ref: ref, key: c.key, text: text, payload: payload, li: li, state: "queued", last: null };
  // The list preview's entry for it: its id and time become the server's once it is acknowledged.
  p.last = { id: Number.MAX_SAFE_INTEGER, user: state.me(), msg: text, t: t };
  state.noteLast(c, p.last);
  pending.set(ref, p);
  transmit(p);
  renderConvList();
  renderThreadChrome();
  if (c === state.activeConv()) scrollToBottom();
  return true;
}

function setPendingStatus(p, text, failed) {
  setStatus(p.li, text, failed ? { retry: () => retryFailed(p), remove: () => discardFailed(p) } : null);
}

function transmit(p) {
  if (socket.isOpen()) {
    socket.send(p.payload);
    p.state = "sent";
    setPendingStatus(p, "Sending…");
  } else {
    p.state = "queued";
    setPendingStatus(p, "Waiting for connection…");
  }
}

// The server stored it: the pending message becomes a normal one, in its id's place.
function confirm(p, id, ts) {
  pending.delete(p.ref);
  const c = state.conversation(p.key);
  const li = p.li;
  if (state.hasMessage(c, id)) {
    removeMessage(li);
  } else {
    li.classList.remove("pending");
    delete li.dataset.ref;
    li.dataset.id = String(id);
    const status = li.querySelector(".status");
    if (status) status.remove();
    if (ts) setMessageTime(li, parseTs(ts));
    state.keepMessage(c, id, li);
    removeMessage(li);
    insertOrdered(c, li, id);
  }
  p.last.id = id;
  if (ts) p.last.t = parseTs(ts);
}

// An "ack": the message with its ref was stored.
export function acknowledge(ev) {
  const p = ev.ref !== undefined ? pending.get(ev.ref) : undefined;
  if (!p || typeof ev.id !== "number") return;
  confirm(p, ev.id, ev.ts);
  renderConvList();
}

// An "error" with a ref: true when it refused one of these messages (now shown as failed, with the reason).
export function refuse(ref, message) {
  const p = pending.get(ref);
  if (!p) return false;
  pending.delete(p.ref);
  p.state = "failed";
  p.li.classList.remove("pending");
  p.li.classList.add("failed");
  setPendingStatus(p, message, true);
  return true;
}

function retryFailed(p) {
  p.ref = newRef();
  p.payload.ref = p.ref; // its client_id stays: if the first try was stored after all, this one is answered with its id
  if (refuseOversize(p.payload)) return; // its new ref made it longer than the server takes: it stays failed
  p.li.dataset.ref = p.ref;
  p.li.classList.remove("failed");
  p.li.classList.add("pending");
  appendLast(state.conversation(p.key), p.li); // to the end, after anything that arrived meanwhile
  pending.set(p.ref, p);
  transmit(p);
  ui.input.focus();
}

function discardFailed(p) {
  const c = state.conversation(p.key);
  removeMessage(p.li);
  if (c.last === p.last) {
    // The list preview showed the discarded message: show the newest one left instead.
    const li = Array.from(c.list.querySelectorAll("li.msg")).pop(); // not a room's system line
    state.setLast(c, li ? { id: Number(li.dataset.id) || 0, user: li.dataset.user, msg: li.querySelector(".text").textContent, t: Number(li.dataset.t) } : null);
  }
  renderConvList();
  renderThreadChrome();
  ui.input.focus();
}

// Connected again (the connect-time history is in): send what waited, and again what was not confirmed (its client_id
// makes that safe: one stored before the drop is acknowledged with its id, and the copy the replay showed stays).
export function flushPending() {
  for (const p of Array.from(pending.values())) {
    if (p.state === "queued" || p.state === "unconfirmed") transmit(p);
  }
}

// The socket dropped: what was sent on it may or may not have been stored.
export function connectionLost() {
  pending.forEach((p) => {
    if (p.state === "sent") {
      p.state = "unconfirmed";
      setPendingStatus(p, "Waiting for connection…");
    }
  });
}

export function clear() {
  pending.clear();
}
