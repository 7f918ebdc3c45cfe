// Opening a conversation: it becomes the thread shown, its history loads, and the address says which one (?with=NAME, ?room=NAME).

import { GROUP } from "./config.js";
import { scrollToBottom, ui } from "./dom.js";
import { isRoomKey } from "./format.js";
import { loadIfNeeded } from "./history.js";
import * as reads from "./reads.js";
import * as reply from "./reply.js";
import * as state from "./state.js";
import * as typing from "./typing.js";
import { renderConvList, renderHeader } from "./views/conversations.js";
import { renderThreadChrome } from "./views/messages.js";

export function openConv(key, opts) {
  opts = opts || {};
  const c = state.conversation(key);
  state.setActive(c);
  ui.thread.replaceChildren(c.list);
  ui.input.placeholder = key === GROUP ? "Message everyone" : "Message " + key;
  reads.seen(c);
  renderHeader();
  renderConvList();
  typing.render();
  reply.render();
  loadIfNeeded(c);
  renderThreadChrome();
  scrollToBottom();
  const query = key === GROUP ? "" : isRoomKey(key) ? "?room=" + encodeURIComponent(key.slice(1)) : "?with=" + encodeURIComponent(key);
  const url = location.pathname + query;
  if (location.pathname + location.search !== url) history.replaceState(null, "", url);
  ui.app.classList.remove("show-list");
  if (!opts.noFocus) ui.input.focus();
}
