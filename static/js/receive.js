// Messages that arrive (live, in history, or in an upload's answer), and room events as system lines: each shown once per id, in its conversation.

import { GROUP, MAX_MENTIONS } from "./config.js";
import { nearBottom, scrollToBottom } from "./dom.js";
import { keyOfRoom, normalizeName, parseTs } from "./format.js";
import { applyEvent, isLifecycleEvent } from "./lifecycle.js";
import { highlight, mentions } from "./mentions.js";
import * as notifications from "./notifications.js";
import * as reads from "./reads.js";
import * as state from "./state.js";
import * as typing from "./typing.js";
import { renderConvList } from "./views/conversations.js";
import { decorate, refreshQuotes } from "./views/messageparts.js";
import { attachmentOf, buildMessage, insertOrdered, previewOf, renderThreadChrome } from "./views/messages.js";
import { buildSystemLine, isRoomEvent, systemText } from "./views/systemlines.js";

// A message's conversation: a one-to-one, a named room ("room":R), or the group (no "room").
function convKeyOf(m) {
  if (m.type === "direct") return m.user === state.me() ? normalizeName(m.to) : normalizeName(m.user);
  if (m.room !== undefined) return keyOfRoom(m.room);
  return GROUP;
}

// Whether message event `m` (of general or a room) mentions this page's user, as the server counts mentions.
function mentionsMe(m) {
  return m.type === "message" && mentions(m.msg, m.user, state.me(), MAX_MENTIONS);
}

// Show room event `ev` (member, topic) as a system line in its room unless it is already shown; never unread.
export function addRoomEvent(ev) {
  if (typeof ev.id !== "number") return false;
  const key = keyOfRoom(ev.room);
  const text = systemText(ev);
  if (!key || key === GROUP || !text) return false;
  const c = state.conversation(key);
  if (state.hasMessage(c, ev.id)) return false;
  const t = parseTs(ev.ts);
  const li = buildSystemLine(text, t);
  li.dataset.id = String(ev.id);
  state.keepMessage(c, ev.id, li);
  insertOrdered(c, li, ev.id);
  state.noteLast(c, previewOf(ev));
  return true;
}

// Show message event `m` (or a room event, as a system line) unless it is already shown; opts.unread counts it as
// unread (unless the user sees it or the server's count has it already). An edit,
// delete or reaction (in a replay) changes the message it is about instead; a deleted message shows as a tombstone.
export function addMessage(m, opts) {
  if (isRoomEvent(m)) return addRoomEvent(m);
  if (isLifecycleEvent(m)) {
    applyEvent(m);
    return false;
  }
  const deleted = Boolean(m) && m.deleted === true;
  if (!m || typeof m.id !== "number" || (typeof m.msg !== "string" && !deleted) || typeof m.user !== "string") return false;
  const key = convKeyOf(m);
  if (!key) return false;
  const c = state.conversation(key);
  if (state.hasMessage(c, m.id)) return false; // already shown: replays and history pages overlap
  const own = m.user === state.me();
  const t = parseTs(m.ts);
  const attachment = deleted ? null : attachmentOf(m);
  const li = buildMessage(m.user, deleted ? "" : m.msg, t, own, attachment);
  li.dataset.id = String(m.id);
  decorate(li, m, key);
  const mentioned = mentionsMe(m);
  if (mentioned) highlight(li, true);
  state.keepMessage(c, m.id, li);
  insertOrdered(c, li, m.id);
  refreshQuotes(c, m.id); // replies shown before it (a history page loaded above them) quote it now
  state.noteLast(c, previewOf(m));
  if (opts.unread && !own && m.id > c.counted) {
    state.noteCounted(c, m.id);
    if (m.id > c.read && !reads.looking(c)) {
      state.countUnread(c);
      if (mentioned) state.countMention(c);
    }
  }
  return true;
}

// fromUpload: the message came in an upload's HTTP answer, not over the socket, so it says nothing about which
// messages the socket has delivered: the id is not noted for ?since= (or earlier ones could be skipped).
export function onLive(ev, fromUpload) {
  if (!fromUpload) state.noteId(ev.id);
  const stick = nearBottom();
  if (!addMessage(ev, { unread: true })) return;
  if (!fromUpload && ev.user !== state.me()) notifications.onMessage(ev, convKeyOf(ev), mentionsMe(ev));
  typing.stopped(convKeyOf(ev), ev.user);
  renderConvList();
  const active = state.activeConv();
  if (active && convKeyOf(ev) === active.key) {
    if (ev.user !== state.me()) reads.seen(active);
    renderThreadChrome();
    if (stick || ev.user === state.me()) scrollToBottom();
  }
}
