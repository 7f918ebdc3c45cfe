// Pure text helpers: names, times, sizes and previews as the page shows them.

import { GROUP, NAME_RE } from "./config.js";

export function normalizeName(raw) {
  const name = String(raw || "").trim().toLowerCase();
  return NAME_RE.test(name) ? name : null;
}

// The conversation key of a server event or list entry: {"room":"general"} is the group, {"with":NAME} a one-to-one;
// null for anything else (other rooms do not exist yet).
export function keyOfWire(obj) {
  if (!obj || typeof obj !== "object") return null;
  if (obj.room !== undefined) return obj.room === "general" ? GROUP : null;
  return normalizeName(obj.with);
}

// The fields that name conversation `key` in a command.
export function wireOfKey(key) {
  return key === GROUP ? { room: "general" } : { with: key };
}

export function titleOf(key) {
  return key === GROUP ? "Everyone" : key;
}

export function colorClass(name) {
  let h = 7;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
  return "c" + (h % 8);
}

export function parseTs(ts) {
  const t = Date.parse(ts);
  return Number.isNaN(t) ? Date.now() : t;
}

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

function clock(d) {
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function messageTime(ms) {
  const d = new Date(ms);
  return sameDay(d, new Date()) ? clock(d) : d.toLocaleDateString([], { month: "short", day: "numeric" }) + ", " + clock(d);
}

export function listTime(ms) {
  const d = new Date(ms);
  return sameDay(d, new Date()) ? clock(d) : d.toLocaleDateString([], { month: "short", day: "numeric" });
}

export function oneLine(text, max) {
  const flat = String(text).replace(/\s+/g, " ").trim();
  return flat.length > max ? flat.slice(0, max - 1) + "…" : flat;
}

export function fileSize(n) {
  if (n < 1024) return n + " B";
  const units = ["KiB", "MiB", "GiB"];
  let v = n;
  let i = -1;
  do {
    v /= 1024;
    i += 1;
  } while (v >= 1023.95 && i < units.length - 1);
  return (v >= 100 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(1).replace(/\.0$/, "")) + " " + units[i];
}

// A count for a badge: "99+" beyond 99.
export function badgeCount(n) {
  return n > 99 ? "99+" : String(n);
}
