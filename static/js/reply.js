// Answering a message: the bar above the composer saying what the next message answers (with Cancel), and the "reply_to" it adds.

import { el } from "./dom.js";
import { oneLine } from "./format.js";
import * as state from "./state.js";

const bar = document.getElementById("reply-bar");
const what = document.getElementById("reply-what");
const cancelButton = document.getElementById("reply-cancel");

let target = null; // {key, id} of the message the next one in conversation `key` answers

// The bar shows while its conversation is open.
export function render() {
  const active = state.activeConv();
  bar.hidden = !(target && active && active.key === target.key);
}

export function start(key, id, user, text) {
  target = { key: key, id: id };
  what.replaceChildren(el("span", "reply-user", user === state.me() ? "yourself" : user), el("span", "reply-text", oneLine(text, 80)));
  render();
  document.getElementById("input").focus();
}

export function cancel() {
  if (!target) return false;
  target = null;
  render();
  return true;
}

// The fields a message sent to conversation `key` now carries: {"reply_to": ID} while answering there, else none.
export function fieldsFor(key) {
  return target && target.key === key ? { reply_to: target.id } : {};
}

cancelButton.addEventListener("click", () => {
  cancel();
  document.getElementById("input").focus();
});
