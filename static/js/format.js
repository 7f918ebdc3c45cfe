// Pure text helpers: names, times, sizes and previews as the page shows them.

import { GROUP, NAME_RE } from "./config.js";

export function normalizeName(raw) {
  const name = String(raw || "").trim().toLowerCase();
  return NAME_RE.test(name) ? name : null;
}

// Conversation keys: GROUP for general, "#NAME" for a named room, a user's name for a one-to-one (names cannot
// start with "#", so the three never meet).
export function roomKey(room) {
  return "#" + room;
}

export function isRoomKey(key) {
  return typeof key === "string" && key.charAt(0) === "#";
}

// The room a key names ("general" for GROUP), or null for a one-to-one.
export function roomOfKey(key) {
  if (key === GROUP) return "general";
  return isRoomKey(key) ? key.slice(1) : null;
}

// The conversation key of a room name on the wire: "general" is the group, any other valid name a named room.
export function keyOfRoom(raw) {
  const room = normalizeName(raw);
  if (!room) return null;
  return room === "general" ? GROUP : roomKey(room);
}

// The conversation key of a server event or list entry: {"room":"general"} is the group, {"room":R} a named room,
// {"with":NAME} a one-to-one; null for anything else.
export function keyOfWire(obj) {
  if (!obj || typeof obj !== "object") return null;
  if (obj.room !== undefined) return keyOfRoom(obj.room);
  return normalizeName(obj.with);
}

// The fields that name conversation `key` in a command.
export function wireOfKey(key) {
  const room = roomOfKey(key);
  return room ? { room: room } : { with: key };
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
