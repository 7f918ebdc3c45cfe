// Read state as the server keeps it: its conversation list (welcome, "conversations"), "read" events from this user's other tabs and devices, and the reads this page sends, at most one a conversation every READ_EVERY_MS.

import { GROUP, READ_EVERY_MS } from "./config.js";
import { keyOfWire, wireOfKey } from "./format.js";
import * as socket from "./socket.js";
import * as state from "./state.js";
import { renderConvList } from "./views/conversations.js";
import { previewOf } from "./views/messages.js";

const outgoing = new Map(); // conversation key -> {want, sent, at, timer}: the read this page means to send, and the last it sent
let listing = false; // a {"type":"conversations"} request is in flight

const isId = (n) => Number.isSafeInteger(n) && n > 0;

// The user sees conversation `c`: it is open and the tab is in front.
export function looking(c) {
  return c !== null && c === state.activeConv() && document.visibilityState === "visible";
}

function applyEntry(entry) {
  const key = keyOfWire(entry);
  if (!key || key === state.me()) return;
  const c = state.conversation(key);
  const last = previewOf(entry.last);
  if (last) {
    state.noteLast(c, last);
    state.noteCounted(c, last.id);
  }
  if (isId(entry.read)) state.noteRead(c, entry.read);
  // A read event newer than the list (it crossed a refresh) may have read all of it already.
  const unread = Number.isSafeInteger(entry.unread) && entry.unread > 0 && c.read < c.counted ? entry.unread : 0;
  state.setUnread(c, unread);
  state.setMentions(c, Number.isSafeInteger(entry.mentions) && entry.mentions > 0 ? entry.mentions : 0);
}

// The welcome's "conversations", or a "conversations" event's: each listed one's preview, marker and unread count.
export function onList(list) {
  if (!Array.isArray(list)) return;
  list.forEach((entry) => entry && typeof entry === "object" && applyEntry(entry));
  state.conversation(GROUP);
  seen(state.activeConv());
  renderConvList();
}

export function onWelcome(ev) {
  onList(ev.conversations);
  flush();
}

export function onConversations(ev) {
  listing = false;
  onList(ev.conversations);
}

// Ask the server for its list again (a read elsewhere left some messages here unread: only it can count them).
function refresh() {
  if (listing || !socket.isOpen()) return;
  listing = true;
  socket.send({ type: "conversations", ref: "c" + state.nextSeq() });
}

// A "read": this user read up to `id` in some tab or device (this one's own reads come back too).
export function onRead(ev) {
  const c = state.findConversation(keyOfWire(ev));
  if (!c || !isId(ev.id)) return;
  state.noteRead(c, ev.id);
  if (c.read >= c.counted) state.setUnread(c, 0);
  else if (c.unread > 0) refresh();
  renderConvList();
}

// The open conversation is in front of the user: it is read up to the newest message shown.
export function seen(c) {
  if (!c || !looking(c)) return;
  if (c.unread) {
    state.setUnread(c, 0);
    renderConvList();
  }
  if (c.newest > c.read) want(c.key, c.newest);
}

function want(key, id) {
  let o = outgoing.get(key);
  if (!o) {
    o = { want: 0, sent: 0, at: 0, timer: 0 };
    outgoing.set(key, o);
  }
  if (id <= o.want) return;
  o.want = id;
  if (o.timer) return;
  o.timer = setTimeout(() => {
    o.timer = 0;
    send(key, o);
  }, Math.max(0, o.at + READ_EVERY_MS - Date.now()));
}

function send(key, o) {
  const c = state.findConversation(key);
  if (!c || o.want <= o.sent || o.want <= c.read) return;
  if (!socket.isOpen()) return; // sent after the next welcome, if it still moves the marker
  socket.send(Object.assign({ type: "read" }, wireOfKey(key), { id: o.want, ref: "r" + state.nextSeq() }));
  o.sent = o.want;
  o.at = Date.now();
}

// Connected again: send the reads that waited.
function flush() {
  outgoing.forEach((o, key) => {
    if (!o.timer) send(key, o);
  });
}

// An "error" with a ref: true when it refused one of these reads or list requests (nothing to show: the count stays).
export function refuse(ref) {
  if (typeof ref !== "string") return false;
  if (ref.charAt(0) === "c") listing = false;
  return ref.charAt(0) === "r" || ref.charAt(0) === "c";
}

// The socket dropped (or this page left): no answer will come to what was asked on it.
export function connectionLost() {
  listing = false;
}

export function clear() {
  outgoing.forEach((o) => clearTimeout(o.timer));
  outgoing.clear();
  listing = false;
}
