// The message list view: one message's <li> (text or attachment), its place and grouping in the thread, and the thread's chrome.

import { GROUP, SAME_BLOCK_MS } from "../config.js";
import { el, linkButton, scrollToBottom, setAvatar, ui } from "../dom.js";
import { fileSize, isRoomKey, messageTime, parseTs } from "../format.js";
import { fixDays, itemAfter, itemBefore } from "../days.js";
import { fillLinked } from "../links.js";
import * as state from "../state.js";
import { isRoomEvent, systemText } from "./systemlines.js";

export function buildMessage(user, text, t, own, attachment) {
  const li = el("li", own ? "msg own" : "msg");
  li.dataset.user = user;
  li.dataset.t = String(t);
  if (!own) {
    const avatar = el("span");
    setAvatar(avatar, user);
    li.appendChild(avatar);
  }
  const body = el("div", "msg-body");
  const meta = el("div", "meta");
  meta.appendChild(el("span", "sender", own ? "You" : user));
  const time = el("time", "time");
  meta.appendChild(time);
  const bubble = el("div", "bubble");
  if (attachment) {
    bubble.classList.add("has-attachment", attachment.image ? "has-picture" : "has-file");
    bubble.appendChild(buildAttachment(attachment));
  } else {
    const p = el("p", "text");
    fillLinked(p, text); // its http(s) addresses as links, the rest as text
    bubble.appendChild(p);
  }
  body.append(meta, bubble);
  li.appendChild(body);
  setMessageTime(li, t);
  return li;
}

export function setMessageTime(li, t) {
  li.dataset.t = String(t);
  const time = li.querySelector("time");
  time.textContent = messageTime(t);
  time.dateTime = new Date(t).toISOString();
  time.title = new Date(t).toLocaleString();
  li.querySelector(".bubble").title = time.title;
}

// The "attachment" of a message event, if it is one this page can show (URLs only under /files/ on this server).
export function attachmentOf(m) {
  const a = m.attachment;
  if (!a || typeof a !== "object" || typeof a.id !== "number" || typeof a.name !== "string") return null;
  const local = (u) => typeof u === "string" && u.indexOf("/files/") === 0;
  if (!local(a.url)) return null;
  return {
    id: a.id,
    name: a.name,
    size: typeof a.size === "number" ? a.size : 0,
    url: a.url,
    thumb: local(a.thumb_url) ? a.thumb_url : null,
    image: a.image === true,
  };
}

export function attachmentPreview(a) {
  return (a.image ? "Picture: " : "File: ") + a.name;
}

// A message event (or room event) as the conversation list previews it ({id, user, msg, t, system}), or null when it is
// not one.
export function previewOf(m) {
  if (isRoomEvent(m)) {
    const text = systemText(m);
    return typeof m.id === "number" && text ? { id: m.id, user: null, msg: text, t: parseTs(m.ts), system: true } : null;
  }
  if (m && m.deleted === true && typeof m.id === "number" && typeof m.user === "string") return { id: m.id, user: m.user, msg: "Message deleted", t: parseTs(m.ts) };
  if (!m || typeof m !== "object" || typeof m.id !== "number" || typeof m.msg !== "string" || typeof m.user !== "string") return null;
  const attachment = attachmentOf(m);
  return { id: m.id, user: m.user, msg: attachment ? attachmentPreview(attachment) : m.msg, t: parseTs(m.ts) };
}

// A picture: its thumbnail (or itself, when small), opening full size in a new tab. Anything else: a download link.
function buildAttachment(a) {
  const link = el("a", a.image ? "attachment picture" : "attachment file");
  link.href = a.url;
  link.dataset.attachmentId = String(a.id);
  if (a.image) {
    link.target = "_blank";
    link.rel = "noopener";
    link.title = a.name + " (" + fileSize(a.size) + ")";
    const img = el("img", "thumb");
    img.alt = a.name;
    img.decoding = "async";
    img.src = a.thumb || a.url;
    img.addEventListener("load", () => {
      // It grew from nothing to its height: keep a reader who was at the bottom there.
      const s = ui.messages;
      if (link.isConnected && s.scrollHeight - s.scrollTop - s.clientHeight < 120 + img.offsetHeight) scrollToBottom();
    });
    link.appendChild(img);
  } else {
    link.download = a.name;
    link.rel = "noopener";
    const icon = el("span", "file-icon");
    icon.setAttribute("aria-hidden", "true");
    const ext = a.name.lastIndexOf(".") > 0 ? a.name.slice(a.name.lastIndexOf(".") + 1, a.name.length).slice(0, 4) : "";
    icon.textContent = ext.toUpperCase() || "FILE";
    const text = el("span", "file-text");
    text.append(el("span", "file-name", a.name), el("span", "file-size", fileSize(a.size)));
    link.append(icon, text);
  }
  return link;
}

// A message continues its neighbour's block when the same sender wrote it soon after.
function regroup(li) {
  if (!li) return;
  const prev = li.previousElementSibling;
  const cont =
    prev !== null &&
    prev.dataset.user === li.dataset.user &&
    !prev.classList.contains("failed") &&
    Math.abs(Number(li.dataset.t) - Number(prev.dataset.t)) < SAME_BLOCK_MS;
  li.classList.toggle("cont", cont);
}

// Messages with ids stay in id order; messages still waiting for their ack stay at the end. Day separators (js/days.js)
// sit before the first item of each day.
export function insertOrdered(c, li, id) {
  if (li.parentNode === c.list) removeMessage(li);
  let after = c.list.lastElementChild;
  while (after && (after.dataset.id === undefined || Number(after.dataset.id) > id)) after = after.previousElementSibling;
  const next = after ? after.nextElementSibling : c.list.firstElementChild;
  c.list.insertBefore(li, next);
  placed(c, li);
}

// At the end of the thread (a message being sent, or one sent again).
export function appendLast(c, li) {
  if (li.parentNode === c.list) removeMessage(li);
  c.list.appendChild(li);
  placed(c, li);
}

// `li` was put in its thread: the day separators around it, then its and its successor's grouping.
function placed(c, li) {
  const before = itemBefore(li);
  const after = itemAfter(li);
  fixDays(c.list, before, li);
  fixDays(c.list, li, after);
  regroup(li);
  regroup(after);
}

// Take a message out of its thread; its neighbour may start a block (or a day) now.
export function removeMessage(li) {
  const list = li.parentNode;
  if (!list) return;
  const before = itemBefore(li);
  const after = itemAfter(li);
  li.remove();
  fixDays(list, before, after);
  regroup(after);
}

// The line under a message being sent: what happens to it, with Retry and Delete once it failed.
export function setStatus(li, text, actions) {
  let status = li.querySelector(".status");
  if (!status) {
    status = el("div", "status");
    li.querySelector(".msg-body").appendChild(status);
  }
  status.replaceChildren(el("span", "status-text", text));
  if (actions) status.append(linkButton("Retry", actions.retry), linkButton("Delete", actions.remove));
}

// The open conversation's "Load older" button and its empty-thread text.
export function renderThreadChrome() {
  const c = state.activeConv();
  if (!c) return;
  const hasMessages = c.list.firstElementChild !== null;
  ui.loadOlder.hidden = !(c.loaded && c.more && hasMessages) && !(c.loading && hasMessages);
  ui.loadOlder.disabled = c.loading;
  ui.loadOlder.textContent = c.loading ? "Loading…" : "Load older messages";
  if (hasMessages) {
    ui.empty.hidden = true;
  } else {
    ui.empty.hidden = false;
    if (!c.loaded) ui.empty.textContent = "Loading messages…";
    else if (c.key === GROUP) ui.empty.textContent = "No messages yet. Say hello to everyone!";
    else if (isRoomKey(c.key)) ui.empty.textContent = "No messages in " + c.key + " yet.";
    else ui.empty.textContent = "This is the start of your conversation with " + c.key + ".";
  }
}
