// Day separators in a thread: a message's local day (pure) and the line with the date between two items of different days.

import { el } from "./dom.js";

function pad(n) {
  return (n < 10 ? "0" : "") + n;
}

// The local calendar day of a time in ms, as "YYYY-MM-DD".
export function dayKey(ms) {
  const d = new Date(ms);
  return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
}

// How a separator names a day: "Today", "Yesterday", else the local date in full.
export function dayLabel(ms, nowMs) {
  const now = new Date(nowMs === undefined ? Date.now() : nowMs);
  const key = dayKey(ms);
  if (key === dayKey(now.getTime())) return "Today";
  const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1, 12);
  if (key === dayKey(yesterday.getTime())) return "Yesterday";
  return new Date(ms).toLocaleDateString([], { weekday: "long", year: "numeric", month: "long", day: "numeric" });
}

export function isSeparator(node) {
  return node !== null && node.classList.contains("day-sep");
}

function dayOf(item) {
  return dayKey(Number(item.dataset.t));
}

// The item (message or system line) before / after `node` in its thread, skipping separators; or null.
export function itemBefore(node) {
  let n = node.previousElementSibling;
  while (isSeparator(n)) n = n.previousElementSibling;
  return n;
}

export function itemAfter(node) {
  let n = node.nextElementSibling;
  while (isSeparator(n)) n = n.nextElementSibling;
  return n;
}

function separator(t) {
  const li = el("li", "day-sep");
  li.setAttribute("role", "separator");
  li.dataset.day = dayKey(t);
  const label = dayLabel(t);
  li.setAttribute("aria-label", label);
  li.appendChild(el("span", "day-label", label));
  return li;
}

// Make the separators between adjacent items `a` and `b` of `list` right (null: the start or end of the thread): one
// before `b` when it starts a day, none otherwise.
export function fixDays(list, a, b) {
  let n = a ? a.nextElementSibling : list.firstElementChild;
  while (n !== null && n !== b) {
    const next = n.nextElementSibling;
    if (isSeparator(n)) n.remove();
    n = next;
  }
  if (b !== null && (a === null || dayOf(a) !== dayOf(b))) list.insertBefore(separator(Number(b.dataset.t)), b);
}
