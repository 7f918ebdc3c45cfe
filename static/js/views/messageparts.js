// What the message lifecycle adds to a message's <li>: its model (text, edited, deleted, reactions, what it answers), the quote, the "(edited)" mark, reaction chips, the action buttons and the tombstone; user text only as textContent.

import { GROUP } from "../config.js";
import { el } from "../dom.js";
import { isRoomKey, oneLine, parseTs } from "../format.js";
import { fillLinked } from "../links.js";
import * as state from "../state.js";

const models = new WeakMap(); // message <li> -> its model

export function modelOf(li) {
  return (li && models.get(li)) || null;
}

// Reactions as the wire has them ({"EMOJI":[users...]}) as a Map of emoji -> users, in order.
function reactionsOf(raw) {
  const map = new Map();
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) return map;
  Object.keys(raw).forEach((key) => {
    const users = Array.isArray(raw[key]) ? raw[key].filter((u) => typeof u === "string") : [];
    if (key && users.length) map.set(key, users);
  });
  return map;
}

// Keep what message event `m` (live, history in its current state, or one being sent) says of the message `li` shows in
// conversation `key`, and draw its parts.
export function decorate(li, m, key) {
  const quote = m.quote && typeof m.quote === "object" ? m.quote : null;
  const model = {
    key: key,
    user: m.user,
    text: typeof m.msg === "string" ? m.msg : "",
    file: Boolean(m.attachment),
    deleted: m.deleted === true,
    edited: typeof m.edited === "string" ? parseTs(m.edited) : null,
    reactions: reactionsOf(m.reactions),
    replyTo: Number.isSafeInteger(m.reply_to) ? m.reply_to : null,
    quote: quote && (quote.deleted === true || (typeof quote.user === "string" && typeof quote.msg === "string")) ? quote : null,
  };
  models.set(li, model);
  render(li);
  return model;
}

// The quote a reply shows: the answered message as this page holds it now, else what the server said, else nothing known.
function quoteOf(model) {
  const c = state.findConversation(model.key);
  const original = modelOf(c && c.byId.get(model.replyTo));
  if (original) return original.deleted ? { deleted: true } : { user: original.user, msg: original.file ? "a file" : original.text };
  return model.quote;
}

function renderQuote(li, model) {
  let quote = li.querySelector(".quote");
  if (model.replyTo === null || model.deleted) {
    if (quote) quote.remove();
    return;
  }
  if (!quote) {
    quote = el("button", "quote");
    quote.type = "button";
    const body = li.querySelector(".msg-body");
    body.insertBefore(quote, li.querySelector(".bubble"));
  }
  quote.dataset.of = String(model.replyTo);
  const q = quoteOf(model);
  const label = el("span", "quote-label", "Reply to ");
  if (q && q.deleted) {
    quote.replaceChildren(label, el("span", "quote-text deleted", "deleted message"));
    quote.title = "The message this answers was deleted";
  } else if (q) {
    quote.replaceChildren(label, el("span", "quote-user", q.user), el("span", "quote-text", oneLine(q.msg, 100)));
    quote.title = "Show the message this answers";
  } else {
    quote.replaceChildren(label, el("span", "quote-text", "an earlier message"));
    quote.title = "Show the message this answers (if it is loaded)";
  }
}

function renderText(li, model) {
  const bubble = li.querySelector(".bubble");
  if (bubble.querySelector(".edit-form")) return; // being edited: the editor stays until saved or cancelled
  const text = bubble.querySelector(".text");
  if (text && !model.file) fillLinked(text, model.text);
  let mark = bubble.querySelector(".edited");
  if (model.edited === null) {
    if (mark) mark.remove();
    return;
  }
  if (!mark) {
    mark = el("span", "edited", "(edited)");
    bubble.appendChild(mark);
  }
  mark.title = "Edited " + new Date(model.edited).toLocaleString();
}

function renderReactions(li, model) {
  let row = li.querySelector(".reactions");
  if (model.reactions.size === 0 || model.deleted) {
    if (row) row.remove();
    return;
  }
  if (!row) {
    row = el("div", "reactions");
    row.setAttribute("aria-label", "Reactions");
    li.querySelector(".msg-body").insertBefore(row, li.querySelector(".msg-body .status"));
  }
  const me = state.me();
  row.replaceChildren(
    ...Array.from(model.reactions, ([key, users]) => {
      const mine = users.includes(me);
      const chip = el("button", mine ? "reaction-chip mine" : "reaction-chip");
      chip.type = "button";
      chip.dataset.key = key;
      chip.setAttribute("aria-pressed", mine ? "true" : "false");
      chip.title = users.map((u) => (u === me ? "You" : u)).join(", ") + " reacted with " + key;
      chip.append(el("span", "reaction-key", key), el("span", "reaction-count", String(users.length)));
      return chip;
    }),
  );
}

function actionButton(cls, label, text) {
  const button = el("button", "msg-act " + cls, text);
  button.type = "button";
  button.setAttribute("aria-label", label);
  button.title = label;
  return button;
}

// Reply and React on every message; Edit on this user's own text messages; Delete on their own, and (shown while this
// user moderates the open room, or is a server admin in general or a room: the .can-moderate class on the thread) on
// anyone's in a named room or general.
function renderActions(li, model) {
  let bar = li.querySelector(".msg-actions");
  if (model.deleted) {
    if (bar) bar.remove();
    return;
  }
  if (bar) return;
  bar = el("div", "msg-actions");
  bar.setAttribute("role", "toolbar");
  bar.setAttribute("aria-label", "Message actions");
  const own = model.user === state.me();
  bar.append(actionButton("act-reply", "Reply", "Reply"), actionButton("act-react", "Add a reaction", "React"));
  if (own && !model.file) bar.appendChild(actionButton("act-edit", "Edit", "Edit"));
  if (own || isRoomKey(model.key) || model.key === GROUP) {
    const del = actionButton("act-delete", "Delete", "Delete");
    if (!own) del.classList.add("mod-only");
    bar.appendChild(del);
  }
  li.appendChild(bar);
}

// What remains of a deleted message: who and when, "Message deleted", nothing of its text or file.
function renderTombstone(li) {
  li.classList.add("deleted");
  const bubble = li.querySelector(".bubble");
  bubble.className = "bubble tombstone";
  bubble.replaceChildren(el("p", "text tombstone-text", "Message deleted"));
  li.querySelectorAll(".quote, .reactions, .msg-actions, .delete-confirm").forEach((n) => n.remove());
}

// Draw `li` as its model says.
export function render(li) {
  const model = modelOf(li);
  if (!model) return;
  if (model.deleted) {
    renderTombstone(li);
    return;
  }
  renderQuote(li, model);
  renderText(li, model);
  renderReactions(li, model);
  renderActions(li, model);
}

// Message `id` of conversation `c` changed (or arrived): the replies to it shown there quote it anew.
export function refreshQuotes(c, id) {
  c.list.querySelectorAll('.quote[data-of="' + id + '"]').forEach((quote) => {
    const li = quote.closest("li");
    const model = modelOf(li);
    if (model) renderQuote(li, model);
  });
}
