// Room commands this page sends (rooms, members, create, join, leave, and the moderation: invite, kick, ban, unban, role, topic) with their refs, and the answers to them: listings to the views, an ack that opens the room joined or created or says what a moderation did, a refusal shown where it was asked.

import { showNotice } from "./dom.js";
import { keyOfRoom, normalizeName } from "./format.js";
import * as invitations from "./invitations.js";
import { openConv } from "./navigation.js";
import * as rooms from "./rooms.js";
import * as socket from "./socket.js";
import * as state from "./state.js";
import { renderConvList, renderHeader } from "./views/conversations.js";
import { renderInvitations } from "./views/invitations.js";
import * as members from "./views/memberspanel.js";
import { closeTopicEditor, showTopicError, topicEditorRoom } from "./views/roomheader.js";
import * as panel from "./views/roomspanel.js";

const asked = new Map(); // ref -> {action, room, user} of the commands in flight
const MODERATION = ["invite", "kick", "ban", "unban", "role"]; // asked from the members dialog
const toOpen = new Set(); // rooms joined or created here whose ack came before this user's "joined" event

// Send `command` with a ref of its own ("k…": no other module's); false (with a notice) when not connected.
function ask(command, room) {
  if (!socket.isOpen()) {
    const text = "Not connected: try again once the chat is back.";
    if (panel.roomsOpen()) panel.showRoomsError(text);
    else if (members.membersOpen()) members.showMembersError(text);
    else if (topicEditorRoom() !== null) showTopicError(text);
    else showNotice(text);
    return false;
  }
  const ref = "k" + state.nextSeq();
  asked.set(ref, { action: command.type, room: room, user: command.user, role: command.role });
  socket.send(Object.assign(command, { ref: ref }));
  return true;
}

export function listRooms() {
  return ask({ type: "rooms" }, null);
}

// The listing again, unless one is on its way (a room joined elsewhere: is it private?).
export function refreshRooms() {
  return Array.from(asked.values()).some((req) => req.action === "rooms") || listRooms();
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

// invite, kick, ban, unban of `user` in `room`
export function moderate(action, room, user) {
  return ask({ type: action, room: room, user: user }, room);
}

export function setRole(room, user, role) {
  return ask({ type: "role", room: room, user: user, role: role }, room);
}

export function setTopic(room, topic) {
  return ask({ type: "topic", room: room, topic: topic }, room);
}

// What an acknowledged moderation did, as the members dialog says it.
function doneText(req) {
  if (req.action === "invite") return "Invited " + req.user + " to #" + req.room + ".";
  if (req.action === "ban") return req.user + " is banned from #" + req.room + ".";
  if (req.action === "unban") return req.user + " may join #" + req.room + " again.";
  if (req.action === "kick") return req.user + " was removed from #" + req.room + ".";
  return req.user + " is now " + (req.role === "moderator" ? "a moderator" : "a member") + " of #" + req.room + ".";
}

// A "rooms" answer (ours, or to a /rooms typed in the composer, which opens the dialog): what it says of each room,
// and the dialog's list.
export function onRooms(ev) {
  if (ev.ref !== undefined) asked.delete(ev.ref);
  else panel.openRooms();
  const list = Array.isArray(ev.rooms) ? ev.rooms.filter((r) => r && normalizeName(r.room) === r.room) : [];
  list.forEach((r) => {
    if (r.room !== "general") rooms.note(r.room, { topic: r.topic, private: r.private, role: r.joined ? r.role : null, members: r.members, invited: r.invited });
  });
  invitations.fromListing(list, ev.more === true);
  renderInvitations(invitations.list());
  panel.renderRooms(list, ev.more === true);
  renderConvList();
  renderHeader();
}

// A "members" answer: the open members dialog shows it (a /members typed in the composer opens it; this user's own
// role is noted on the way).
export function onMembers(ev) {
  const room = normalizeName(ev.room);
  if (ev.ref !== undefined) asked.delete(ev.ref);
  else if (room) members.openMembers(room);
  const list = Array.isArray(ev.members) ? ev.members.filter((m) => m && normalizeName(m.user) === m.user) : [];
  const mine = list.find((m) => m.user === state.me());
  if (room && room !== "general" && mine && rooms.isMember(room)) rooms.note(room, { role: mine.role });
  members.renderMembers(room, list, ev.more === true, state.me());
}

// An "ack" with one of these refs: a room joined or created from this page opens; a moderation says what it did in the
// members dialog it was asked from; a topic closes its editor.
export function acknowledge(ev) {
  const req = ev.ref !== undefined ? asked.get(ev.ref) : undefined;
  if (!req) return false;
  asked.delete(ev.ref);
  if (req.action === "join" || req.action === "create") {
    panel.closeRooms();
    if (req.action === "create") panel.resetCreateForm();
    if (rooms.isMember(req.room)) openConv(keyOfRoom(req.room));
    else toOpen.add(req.room); // with several server processes the event may follow the ack
  } else if (MODERATION.includes(req.action) && members.membersRoomShown() === req.room) {
    members.showMembersDone(doneText(req), req.action !== "kick" && req.action !== "role");
  } else if (req.action === "topic" && topicEditorRoom() === req.room) {
    closeTopicEditor();
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
  else if ((req.action === "members" || MODERATION.includes(req.action)) && members.membersRoomShown() === req.room) members.showMembersError(message);
  else if (req.action === "topic" && topicEditorRoom() === req.room) showTopicError(message);
  else showNotice(message);
  return true;
}

// The socket dropped: no answer will come to what was asked on it.
export function connectionLost() {
  asked.clear();
  toOpen.clear();
}
