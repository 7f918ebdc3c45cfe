// Messages that arrive (live, in history, or in an upload's answer): each shown once per id, in its conversation.

import { GROUP } from "./config.js";
import { nearBottom, scrollToBottom } from "./dom.js";
import { normalizeName, parseTs } from "./format.js";
import { claimUnconfirmed } from "./outbox.js";
import * as state from "./state.js";
import { renderConvList } from "./views/conversations.js";
import { attachmentOf, attachmentPreview, buildMessage, insertOrdered, renderThreadChrome } from "./views/messages.js";

function convKeyOf(m) {
  if (m.type === "direct") return m.user === state.me() ? normalizeName(m.to) : normalizeName(m.user);
  return GROUP;
}

// Show message event `m` unless it is already shown; opts.unread counts it as unread, opts.replay may settle a pending one.
export function addMessage(m, opts) {
  if (!m || typeof m.id !== "number" || typeof m.msg !== "string" || typeof m.user !== "string") return false;
  const key = convKeyOf(m);
  if (!key) return false;
  const c = state.conversation(key);
  if (state.hasMessage(c, m.id)) return false; // already shown: replays and history pages overlap
  const own = m.user === state.me();
  if (own && opts.replay && claimUnconfirmed(c, m)) return false;
  const t = parseTs(m.ts);
  const attachment = attachmentOf(m);
  const li = buildMessage(m.user, m.msg, t, own, attachment);
  li.dataset.id = String(m.id);
  state.keepMessage(c, m.id, li);
  insertOrdered(c, li, m.id);
  state.noteLast(c, { id: m.id, user: m.user, msg: attachment ? attachmentPreview(attachment) : m.msg, t: t });
  state.rememberConv(key);
  if (opts.unread && !own && (c !== state.activeConv() || document.hidden)) state.countUnread(c);
  return true;
}

// fromUpload: the message came in an upload's HTTP answer, not over the socket, so it says nothing about which
// messages the socket has delivered: the id is not noted for ?since= (or earlier ones could be skipped).
export function onLive(ev, fromUpload) {
  if (!fromUpload) state.noteId(ev.id);
  const stick = nearBottom();
  if (!addMessage(ev, { unread: true })) return;
  renderConvList();
  const active = state.activeConv();
  if (active && convKeyOf(ev) === active.key) {
    renderThreadChrome();
    if (stick || ev.user === state.me()) scrollToBottom();
  }
}
