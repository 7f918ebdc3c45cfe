// The search box: a form at the top of the sidebar that sends {"type":"search","q":...} (everything this user can see),
// lists the results (newest first, user text as textContent only) and pages on with "before" while "more" is true.

import { el } from "./dom.js";
import * as socket from "./socket.js";
import * as state from "./state.js";

let form = null;
let input = null;
let list = null;
let status = null;
let moreButton = null;
let pending = null; // the ref of the search in flight
let query = ""; // the text of the search whose results are listed
let lastId = null; // the oldest result listed: where the next page starts

function where(ev) {
  if (ev.room) return "#" + ev.room;
  if (ev.type === "direct") return ev.user === state.me() ? "to " + ev.to : "from " + ev.user;
  return "general";
}

function ask(q, before) {
  if (!socket.isOpen()) {
    status.textContent = "Not connected: try again once the chat is back.";
    status.hidden = false;
    return;
  }
  pending = "q" + state.nextSeq();
  const command = { type: "search", q: q, ref: pending };
  if (before !== null) command.before = before;
  socket.send(command);
  status.textContent = "Searching…";
  status.hidden = false;
  moreButton.hidden = true;
}

function submit(event) {
  event.preventDefault();
  const q = input.value.trim();
  if (!q) return;
  query = q;
  lastId = null;
  list.replaceChildren();
  ask(q, null);
}

// A search answer: this box's, or a "/search words" typed in the composer (no ref), which the box shows too.
export function onResults(ev) {
  if (!form || (ev.ref !== pending && ev.ref !== undefined)) return;
  if (ev.ref === undefined && typeof ev.q === "string" && ev.before === undefined) {
    query = input.value = ev.q;
    list.replaceChildren();
  }
  pending = null;
  const results = Array.isArray(ev.results) ? ev.results : [];
  results.forEach((result) => {
    const item = el("li", "search-result");
    item.dataset.id = String(result.id);
    item.append(el("span", "search-where", result.user + " · " + where(result)), el("span", "search-text", result.msg));
    list.append(item);
    lastId = result.id;
  });
  list.hidden = list.childElementCount === 0;
  status.textContent = list.childElementCount === 0 ? "No messages with these words." : "";
  status.hidden = status.textContent === "";
  moreButton.hidden = !ev.more;
}

// A refusal of this box's search: shown under it (true), or not this box's (false).
export function refuse(ref, message) {
  if (!form || ref !== pending) return false;
  pending = null;
  status.textContent = message;
  status.hidden = false;
  return true;
}

// Build the box at the top of the sidebar.
export function init() {
  const sidebar = document.querySelector(".sidebar-scroll");
  if (!sidebar) return;
  form = el("form", "search-form");
  form.id = "search-form";
  form.setAttribute("role", "search");
  input = el("input");
  input.id = "search-input";
  input.type = "search";
  input.maxLength = 200;
  input.placeholder = "Search messages";
  input.setAttribute("aria-label", "Search messages");
  const button = el("button", "btn-soft small", "Search");
  button.type = "submit";
  status = el("p", "search-status");
  status.id = "search-status";
  status.setAttribute("role", "status");
  status.hidden = true;
  list = el("ul", "search-results");
  list.id = "search-results";
  list.hidden = true;
  moreButton = el("button", "btn-ghost small", "Older results");
  moreButton.id = "search-more";
  moreButton.type = "button";
  moreButton.hidden = true;
  moreButton.addEventListener("click", () => ask(query, lastId));
  form.append(input, button);
  form.addEventListener("submit", submit);
  sidebar.prepend(form, status, list, moreButton);
}
