// The conversation list view (previews, times, unread badges; rooms while this user is in them, private ones with a lock) and the open conversation's header (a room's topic and controls).

import { GROUP } from "../config.js";
import { el, lockIcon, setAvatar, ui } from "../dom.js";
import { badgeCount, isRoomKey, listTime, oneLine, roomOfKey, titleOf } from "../format.js";
import * as rooms from "../rooms.js";
import * as state from "../state.js";
import { syncRoomControls } from "./roomheader.js";

const items = new WeakMap(); // conversation -> its list entry's nodes

function convItem(c) {
  let it = items.get(c);
  if (it) return it;
  const li = el("li", "conv");
  li.dataset.conv = c.key;
  const btn = el("button", "conv-btn");
  btn.type = "button";
  const avatar = el("span");
  setAvatar(avatar, c.key);
  avatar.appendChild(el("span", "presence-dot"));
  const main = el("span", "conv-main");
  const top = el("span", "conv-top");
  const name = el("span", "conv-name", titleOf(c.key));
  const lock = el("span", "conv-lock");
  lock.setAttribute("role", "img");
  lock.setAttribute("aria-label", "private");
  lock.title = "Private room";
  lock.appendChild(lockIcon());
  lock.hidden = true;
  const time = el("span", "conv-time");
  top.append(name, lock, time);
  const bottom = el("span", "conv-bottom");
  const preview = el("span", "conv-preview");
  const badge = el("span", "badge");
  badge.hidden = true;
  const atBadge = el("span", "mention-badge"); // unread messages that mention this user (not .badge: that is the unread count)
  atBadge.hidden = true;
  bottom.append(preview, atBadge, badge);
  main.append(top, bottom);
  btn.append(avatar, main);
  li.appendChild(btn);
  it = { li: li, btn: btn, lock: lock, time: time, preview: preview, badge: badge, atBadge: atBadge };
  items.set(c, it);
  return it;
}

function renderConvItem(c) {
  const it = convItem(c);
  const last = c.last;
  const room = isRoomKey(c.key);
  if (last) {
    const who = last.system ? "" : last.user === state.me() ? "You: " : c.key === GROUP || room ? last.user + ": " : "";
    it.preview.textContent = who + oneLine(last.msg, 90);
    it.time.textContent = listTime(last.t);
  } else {
    const topic = room ? rooms.infoOf(roomOfKey(c.key)).topic : "";
    it.preview.textContent = c.key === GROUP ? "Group chat with everyone" : topic ? oneLine(topic, 90) : "No messages yet";
    it.time.textContent = "";
  }
  it.badge.textContent = badgeCount(c.unread);
  it.badge.hidden = c.unread === 0;
  it.atBadge.textContent = "@" + badgeCount(c.mentions);
  it.atBadge.hidden = c.mentions === 0;
  it.li.classList.toggle("mentioned", c.mentions > 0);
  const active = c === state.activeConv();
  it.li.classList.toggle("active", active);
  if (active) it.btn.setAttribute("aria-current", "true");
  else it.btn.removeAttribute("aria-current");
  it.li.classList.toggle("unread", c.unread > 0);
  it.li.classList.toggle("online", c.key !== GROUP && !room && state.isOnline(c.key));
  it.li.classList.toggle("room", room);
  const locked = room && rooms.infoOf(roomOfKey(c.key)).private;
  it.lock.hidden = !locked;
  it.btn.setAttribute("aria-label", titleOf(c.key) + (locked ? ", private" : "") + (c.unread ? ", " + c.unread + " unread" : "") + (c.mentions ? ", " + c.mentions + (c.mentions === 1 ? " mention" : " mentions") : ""));
}

// A named room is listed while this user is in it; the group and one-to-ones always.
function listed(c) {
  return !isRoomKey(c.key) || rooms.isMember(roomOfKey(c.key));
}

// The group first, then the newest conversation first; the unread total on the back button and the tab's title.
export function renderConvList() {
  const convs = state.conversations().filter(listed);
  convs.sort((a, b) => {
    if (a.key === GROUP) return -1;
    if (b.key === GROUP) return 1;
    // Ids follow the order the server took the messages in; one still being sent counts as the newest.
    const ia = a.last ? a.last.id : 0;
    const ib = b.last ? b.last.id : 0;
    return ib - ia || (a.key < b.key ? -1 : 1);
  });
  let total = 0;
  let mentioned = 0;
  convs.forEach((c, i) => {
    renderConvItem(c);
    const li = convItem(c).li;
    if (ui.conversations.children[i] !== li) ui.conversations.insertBefore(li, ui.conversations.children[i] || null);
    total += c.unread;
    mentioned += c.mentions;
  });
  while (ui.conversations.children.length > convs.length) ui.conversations.lastElementChild.remove(); // rooms left
  ui.backBadge.textContent = badgeCount(total);
  ui.backBadge.hidden = total === 0;
  document.title = (total ? "(" + total + ") " : "") + (mentioned ? "@" + mentioned + " " : "") + "Chat";
}

export function renderHeader() {
  const c = state.activeConv();
  if (!c) return;
  setAvatar(ui.chatAvatar, c.key);
  ui.chatTitle.textContent = titleOf(c.key);
  const room = isRoomKey(c.key);
  ui.roomActions.hidden = !room;
  syncRoomControls(room ? roomOfKey(c.key) : null, c.key === GROUP);
  ui.chatSub.classList.toggle("topic", room);
  ui.chatSub.title = "";
  if (room) {
    const info = rooms.infoOf(roomOfKey(c.key));
    ui.chatSub.textContent = info.topic || (info.private ? "Private room" : "Room") + " · no topic";
    ui.chatSub.title = info.topic;
    ui.chatAvatar.classList.remove("online");
  } else if (c.key === GROUP) {
    const n = state.onlineCount();
    ui.chatSub.textContent = n ? n + (n === 1 ? " person online" : " people online") : "Group chat";
    ui.chatAvatar.classList.remove("online");
  } else {
    const on = state.isOnline(c.key);
    ui.chatSub.textContent = on ? "online" : "offline";
    ui.chatAvatar.classList.toggle("online", on);
    ui.chatAvatar.appendChild(el("span", "presence-dot"));
  }
}
