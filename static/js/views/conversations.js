// The conversation list view (previews, times, unread badges) and the open conversation's header.

import { GROUP } from "../config.js";
import { el, setAvatar, ui } from "../dom.js";
import { badgeCount, listTime, oneLine, titleOf } from "../format.js";
import * as state from "../state.js";

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
  const time = el("span", "conv-time");
  top.append(name, time);
  const bottom = el("span", "conv-bottom");
  const preview = el("span", "conv-preview");
  const badge = el("span", "badge");
  badge.hidden = true;
  bottom.append(preview, badge);
  main.append(top, bottom);
  btn.append(avatar, main);
  li.appendChild(btn);
  it = { li: li, btn: btn, time: time, preview: preview, badge: badge };
  items.set(c, it);
  return it;
}

function renderConvItem(c) {
  const it = convItem(c);
  const last = c.last;
  if (last) {
    const who = last.user === state.me() ? "You: " : c.key === GROUP ? last.user + ": " : "";
    it.preview.textContent = who + oneLine(last.msg, 90);
    it.time.textContent = listTime(last.t);
  } else {
    it.preview.textContent = c.key === GROUP ? "Group chat with everyone" : "No messages yet";
    it.time.textContent = "";
  }
  it.badge.textContent = badgeCount(c.unread);
  it.badge.hidden = c.unread === 0;
  const active = c === state.activeConv();
  it.li.classList.toggle("active", active);
  if (active) it.btn.setAttribute("aria-current", "true");
  else it.btn.removeAttribute("aria-current");
  it.li.classList.toggle("unread", c.unread > 0);
  it.li.classList.toggle("online", c.key !== GROUP && state.isOnline(c.key));
  it.btn.setAttribute("aria-label", titleOf(c.key) + (c.unread ? ", " + c.unread + " unread" : ""));
}

// The group first, then the newest conversation first; the unread total on the back button and the tab's title.
export function renderConvList() {
  const convs = state.conversations();
  convs.sort((a, b) => {
    if (a.key === GROUP) return -1;
    if (b.key === GROUP) return 1;
    // Ids follow the order the server took the messages in; one still being sent counts as the newest.
    const ia = a.last ? a.last.id : 0;
    const ib = b.last ? b.last.id : 0;
    return ib - ia || (a.key < b.key ? -1 : 1);
  });
  let total = 0;
  convs.forEach((c, i) => {
    renderConvItem(c);
    const li = convItem(c).li;
    if (ui.conversations.children[i] !== li) ui.conversations.insertBefore(li, ui.conversations.children[i] || null);
    total += c.unread;
  });
  ui.backBadge.textContent = badgeCount(total);
  ui.backBadge.hidden = total === 0;
  document.title = (total ? "(" + total + ") " : "") + "Chat";
}

export function renderHeader() {
  const c = state.activeConv();
  if (!c) return;
  setAvatar(ui.chatAvatar, c.key);
  ui.chatTitle.textContent = titleOf(c.key);
  if (c.key === GROUP) {
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
