// History: asking for a conversation's pages ({"type":"history"}) and taking in their events, and the connect-time history or replay.

import { GROUP, PAGE_SIZE } from "./config.js";
import { nearBottom, scrollToBottom, ui } from "./dom.js";
import { wireOfKey } from "./format.js";
import { flushPending } from "./outbox.js";
import * as reads from "./reads.js";
import { addMessage } from "./receive.js";
import * as socket from "./socket.js";
import * as state from "./state.js";
import { renderConvList } from "./views/conversations.js";
import { renderThreadChrome } from "./views/messages.js";

const requests = new Map(); // ref -> {key, kind} of history requests in flight

// kind: "open" (the newest page) or "older" (the page before the oldest shown).
export function requestHistory(c, kind) {
  if (!socket.isOpen()) return;
  const ref = "h" + state.nextSeq();
  const req = { type: "history", limit: PAGE_SIZE, ref: ref };
  if (c.key !== GROUP) Object.assign(req, wireOfKey(c.key)); // {"with":NAME} or {"room":R}; general: neither
  if (kind === "older") {
    const first = c.list.querySelector("li[data-id]");
    if (!first) return;
    req.before = Number(first.dataset.id);
  }
  requests.set(ref, { key: c.key, kind: kind });
  state.startLoading(c);
  socket.send(req);
  if (c === state.activeConv()) renderThreadChrome();
}

// Open a conversation that has not loaded yet.
export function loadIfNeeded(c) {
  if (c && !c.loaded && !c.loading) requestHistory(c, "open");
}

// A long history comes as several events: all but the last say "complete": false (one event says nothing). A capped
// replay's last event says "complete": false with "next": the id to go on from.
export function onHistory(ev) {
  const messages = Array.isArray(ev.messages) ? ev.messages : [];
  const last = ev.complete !== false;
  const req = ev.ref !== undefined ? requests.get(ev.ref) : undefined;
  if (req) {
    if (last) requests.delete(ev.ref);
    const c = state.conversation(req.key);
    const keep = req.kind === "older" && c === state.activeConv() ? { h: ui.messages.scrollHeight, top: ui.messages.scrollTop } : null;
    messages.forEach((m) => addMessage(m, { unread: false }));
    if (!last) {
      if (keep) ui.messages.scrollTop = ui.messages.scrollHeight - keep.h + keep.top;
      return;
    }
    state.finishLoading(c, ev.more === true);
    renderConvList();
    if (c === state.activeConv()) {
      reads.seen(c);
      renderThreadChrome();
      if (keep) ui.messages.scrollTop = ui.messages.scrollHeight - keep.h + keep.top;
      else if (req.kind === "open") scrollToBottom();
    }
    return;
  }
  // The connect-time history: recent group messages and unreceived directs, or (with ?since=) all that was missed.
  // The welcome's unread counts have them already.
  const stick = nearBottom();
  messages.forEach((m) => {
    state.noteId(m.id);
    addMessage(m, { unread: false });
  });
  if (!last) {
    // A replay longer than the server's max_replay stops with "next": ask for what follows, page by page (the answers
    // carry no ref, so they come back here as more of the same replay).
    if (typeof ev.next === "number") socket.send({ type: "history", since: ev.next });
    socket.markResumable(); // cut off before the last event: a reconnect asks for what follows (?since=)
    renderConvList();
    if (stick) scrollToBottom();
    return;
  }
  flushPending();
  const first = socket.markCaughtUp();
  loadIfNeeded(state.activeConv());
  reads.seen(state.activeConv());
  renderConvList();
  renderThreadChrome();
  if (stick || first) scrollToBottom();
}

// An "error" with a ref: if it refused a history request, that conversation loads no more.
export function refuse(ref) {
  const req = requests.get(ref);
  if (!req) return;
  requests.delete(ref);
  const c = state.conversation(req.key);
  state.finishLoading(c, false);
  if (c === state.activeConv()) renderThreadChrome();
}

// The socket dropped (or this page left): no answer will come to what was asked on it.
export function clear() {
  requests.clear();
}
