// The "Online" list view: this page's user first, then everyone else online, each a button to chat with them.

import { el, setAvatar, ui } from "../dom.js";
import * as state from "../state.js";
import { renderConvList, renderHeader } from "./conversations.js";

export function renderOnline() {
  const me = state.me();
  const names = state.onlineNames().filter((n) => n !== me).sort();
  const items = [];
  if (me) {
    const li = el("li", "person me");
    const avatar = el("span");
    setAvatar(avatar, me);
    li.append(avatar, el("span", "person-name", me), el("span", "you", "you"));
    items.push(li);
  }
  names.forEach((name) => {
    const li = el("li", "person");
    li.dataset.user = name;
    const btn = el("button", "person-btn");
    btn.type = "button";
    btn.title = "Chat with " + name;
    const avatar = el("span");
    setAvatar(avatar, name);
    avatar.appendChild(el("span", "presence-dot"));
    btn.append(avatar, el("span", "person-name", name));
    li.appendChild(btn);
    items.push(li);
  });
  ui.online.replaceChildren(...items);
  ui.onlineCount.textContent = String(state.onlineCount() || (me ? 1 : 0));
  renderHeader();
  renderConvList();
}
