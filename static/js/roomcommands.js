// Room commands this page sends (rooms, members, create, join, leave, kick) with their refs, and the answers to them: listings to the views, an ack that opens the room joined or created, a refusal shown where it was asked.

import { showNotice } from "./dom.js";
import { keyOfRoom, normalizeName } from "./format.js";
import { openConv } from "./navigation.js";
import * as rooms from "./rooms.js";
import * as socket from "./socket.js";
import * as state from "./state.js";
import { renderConvList, renderHeader } from "./views/conversations.js";
import * as panel from "./views/roomspanel.js";

const asked = new Map(); // ref -> {action, room} of the commands in flight
const toOpen = new Set(); // rooms joined or created here whose ack came before this user's "joined" event

// Send `command` with a ref of its own ("k…": no other module's); false (with a notice) when not connected.
function ask(command, room) {
  if (!socket.isOpen()) {
    const text = "Not connected: try again once the chat is back.";
    if (panel.roomsOpen()) panel.showRoomsError(text);
    else showNotice(text);
    return false;
  }
  const ref = "k" + state.nextSeq();
  asked.set(ref, { action: command.type, room: room });
  socket.send(Object.assign(command, { ref: ref }));
  return true;
}

export function listRooms() {
  return ask({ type: "rooms" }, null);
}

export function listMembers(room) {
  return ask({ type: "members", room: room }, room);
}

export function create(room, isPrivate, topic) {
  return ask({ type: "create", room: room, private: isPrivate, topic: topic }, room);
}

export function join(room) {
  return ask({ type: "join", room: room }, room);
}

export function leave(room) {
  return ask({ type: "leave", room: room }, room);
}

export function kick(room, user) {
  return ask({ type: "kick", room: room, user: user }, room);
}

// A "rooms" answer (ours, or to a /rooms typed in the composer, which opens the dialog): what it says of each room,
// and the dialog's list.
export function onRooms(ev) {
  if (ev.ref !== undefined) asked.delete(ev.ref);
  else panel.openRooms();
  const list = Array.isArray(ev.rooms) ? ev.rooms.filter((r) => r && normalizeName(r.room)) : [];
  list.forEach((r) => {
    const room = normalizeName(r.room);
    if (room !== "general") rooms.note(room, { topic: r.topic, private: r.private, role: r.joined ? r.role : null, members: r.members, invited: r.invited });
  });
  panel.renderRooms(list, ev.more === true);
  renderConvList();
  renderHeader();
}

// A "members" answer: the open members dialog shows it (a /members typed in the composer opens it; this user's own
// role is noted on the way).
export function onMembers(ev) {
  const room = normalizeName(ev.room);
  if (ev.ref !== undefined) asked.delete(ev.ref);
  else if (room) panel.openMembers(room);
  const members = Array.isArray(ev.members) ? ev.members.filter((m) => m && normalizeName(m.user)) : [];
  const mine = members.find((m) => m.user === state.me());
  if (room && room !== "general" && mine && rooms.isMember(room)) rooms.note(room, { role: mine.role });
  panel.renderMembers(room, members, ev.more === true, state.me());
}

// An "ack" with one of these refs: a room joined or created from this page opens.
export function acknowledge(ev) {
  const req = ev.ref !== undefined ? asked.get(ev.ref) : undefined;
  if (!req) return false;
  asked.delete(ev.ref);
  if (req.action === "join" || req.action === "create") {
    panel.closeRooms();
    if (req.action === "create") panel.resetCreateForm();
    if (rooms.isMember(req.room)) openConv(keyOfRoom(req.room));
    else toOpen.add(req.room); // with several server processes the event may follow the ack
  }
  return true;
}

// This user's "joined" event for `room`: true when this page asked to join or create it and it should open now.
export function openOnJoin(room) {
  return toOpen.delete(room);
}

// An "error" with one of these refs: shown in the dialog it was asked from, else as a notice. True when it was ours.
export function refuse(ref, message) {
  const req = asked.get(ref);
  if (!req) return false;
  asked.delete(ref);
  if ((req.action === "create" || req.action === "join" || req.action === "rooms") && panel.roomsOpen()) panel.showRoomsError(message);
  else if ((req.action === "members" || req.action === "kick") && panel.membersOpen()) panel.showMembersError(message);
  else showNotice(message);
  return true;
}

// The socket dropped: no answer will come to what was asked on it.
export function connectionLost() {
  asked.clear();
  toOpen.clear();
}
