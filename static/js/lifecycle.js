// The message lifecycle on the page: edit, delete and reaction events (live, in ?since= replays) applied to the messages shown, and this user's edit, delete and react requests with their answers.

import { GROUP, MAX_MESSAGE_SIZE } from "./config.js";
import { nearBottom, scrollToBottom } from "./dom.js";
import { keyOfRoom, normalizeName, parseTs } from "./format.js";
import * as socket from "./socket.js";
import * as state from "./state.js";
import { renderConvList } from "./views/conversations.js";
import { modelOf, refreshQuotes, render } from "./views/messageparts.js";

const KINDS = ["edit", "delete", "reaction"];
const pending = new Map(); // ref -> {kind, key, of, msg, emoji, op, done, failed} of requests waiting for their answer

export function isLifecycleEvent(ev) {
  return Boolean(ev) && KINDS.includes(ev.type);
}

// The conversation of a lifecycle event: its room, the one-to-one ("to": the party who did not make the change), or
// the group.
function keyOfEvent(ev) {
  if (typeof ev.to === "string") return normalizeName(ev.user === state.me() ? ev.to : ev.user);
  if (ev.room !== undefined) return keyOfRoom(ev.room);
  return GROUP;
}

// The list preview follows its message's edit or deletion.
function syncPreview(c, id, model) {
  if (!c.last || c.last.id !== id) return;
  state.setLast(c, Object.assign({}, c.last, { msg: model.deleted ? "Message deleted" : model.file ? c.last.msg : model.text }));
  renderConvList();
}

// Apply one change to message `change.of` of conversation `key` if this page shows it (a message not loaded comes in
// its current state with the history page that loads it). Events apply as set operations: a replay may repeat them.
function apply(key, change) {
  const c = key ? state.findConversation(key) : null;
  const li = c && c.byId.get(change.of);
  const model = modelOf(li);
  if (!model || model.deleted) return false;
  const active = state.activeConv() === c;
  const stick = active && nearBottom();
  if (change.kind === "edit") {
    if (typeof change.msg !== "string") return false;
    model.text = change.msg;
    model.edited = parseTs(change.ts);
  } else if (change.kind === "delete") {
    model.deleted = true;
    model.text = "";
    model.reactions.clear();
  } else {
    const users = (model.reactions.get(change.emoji) || []).filter((u) => u !== change.user);
    if (change.op !== "remove") users.push(change.user);
    if (users.length) model.reactions.set(change.emoji, users);
    else model.reactions.delete(change.emoji);
  }
  render(li);
  if (change.kind !== "reaction") {
    refreshQuotes(c, change.of);
    syncPreview(c, change.of, model);
  }
  if (stick) scrollToBottom();
  return true;
}

// An edit, delete or reaction event from the server, live or in a history replay.
export function applyEvent(ev) {
  if (!Number.isSafeInteger(ev.of) || typeof ev.user !== "string") return false;
  const change = { kind: ev.type, of: ev.of, user: ev.user, msg: ev.msg, ts: ev.ts, emoji: ev.key, op: ev.op };
  if (change.kind === "reaction" && (typeof ev.key !== "string" || !ev.key)) return false;
  return apply(keyOfEvent(ev), change);
}

export function onLive(ev) {
  state.noteId(ev.id);
  applyEvent(ev);
}

function send(req, info) {
  if (!socket.isOpen()) return "Not connected: try again once the chat is back online.";
  const ref = "l" + state.nextSeq();
  req.ref = ref;
  if (new TextEncoder().encode(JSON.stringify(req)).length > MAX_MESSAGE_SIZE) return "That text is too long to send.";
  pending.set(ref, info);
  socket.send(req);
  return null;
}

// Ask to change message `id` of conversation `key`; `done()` once applied, `failed(reason)` when refused. Returns the
// reason it could not be sent, or null.
export function requestEdit(key, id, text, done, failed) {
  return send({ type: "edit", of: id, msg: text }, { kind: "edit", key: key, of: id, msg: text, done: done, failed: failed });
}

export function requestDelete(key, id, done, failed) {
  return send({ type: "delete", of: id }, { kind: "delete", key: key, of: id, done: done, failed: failed });
}

export function requestReaction(key, id, emoji, op, failed) {
  return send({ type: "react", of: id, key: emoji, op: op }, { kind: "reaction", key: key, of: id, emoji: emoji, op: op, failed: failed });
}

// An "ack" of one of these requests (this connection gets the ack instead of the event): apply it. True when it was one.
export function acknowledge(ev) {
  const p = ev.ref !== undefined ? pending.get(ev.ref) : undefined;
  if (!p) return false;
  pending.delete(ev.ref);
  apply(p.key, { kind: p.kind, of: p.of, user: state.me(), msg: p.msg, ts: ev.ts, emoji: p.emoji, op: p.op });
  if (p.done) p.done();
  return true;
}

const VERB = { edit: "edit", delete: "delete", reaction: "react to" };

// Why the server refused, in words for the user.
function reason(p, code, message) {
  const what = "Could not " + VERB[p.kind] + " that message: ";
  if (code === "not_found") return what + "it no longer exists (it was deleted) or you cannot see it.";
  if (code === "not_member") return what + "join the room first.";
  if (code === "forbidden") return what + (message || "you may not.") ;
  if (code === "bad_field" && p.kind === "reaction") return what + "a reaction is one emoji.";
  if (code === "rate_limited") return what + "you are sending too fast; try again in a moment.";
  return what + (message || code || "the server refused it.");
}

// An "error" with a ref: true when it refused one of these requests (its owner shows why).
export function refuse(ref, code, message) {
  const p = pending.get(ref);
  if (!p) return false;
  pending.delete(ref);
  p.failed(reason(p, code, message));
  return true;
}

// The socket dropped: no answer will come to what was asked on it.
export function connectionLost() {
  const lost = Array.from(pending.values());
  pending.clear();
  lost.forEach((p) => p.failed("The connection dropped before the server answered: try again."));
}
