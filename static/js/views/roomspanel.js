// The rooms dialog (the server's list with Join/Open buttons, the create form) and the members dialog (members, roles, online, Kick for those this user outranks); they show what they are given and send nothing.

import { MAX_TOPIC } from "../config.js";
import { el, setAvatar, ui } from "../dom.js";
import * as rooms from "../rooms.js";

let membersRoom = null; // the room the members dialog shows

ui.createRoomTopic.maxLength = MAX_TOPIC;

export function roomsOpen() {
  return ui.roomsDialog.open;
}

export function membersOpen() {
  return ui.membersDialog.open;
}

export function membersRoomShown() {
  return membersOpen() ? membersRoom : null;
}

function setStatus(node, text) {
  node.textContent = text;
  node.hidden = !text;
}

// Open the rooms dialog, its list to be filled by renderRooms.
export function openRooms() {
  ui.roomsError.hidden = true;
  setStatus(ui.roomsStatus, "Loading rooms…");
  if (!ui.roomsDialog.open) ui.roomsDialog.showModal();
}

export function closeRooms() {
  if (ui.roomsDialog.open) ui.roomsDialog.close();
}

export function showRoomsError(text) {
  ui.roomsError.textContent = text;
  ui.roomsError.hidden = false;
}

function roomItem(r) {
  const name = r.room;
  const li = el("li", "room-item");
  li.dataset.room = name;
  const avatar = el("span");
  setAvatar(avatar, name === "general" ? "*" : "#" + name);
  const main = el("span", "room-main");
  const top = el("span", "room-top");
  top.appendChild(el("span", "room-name", name === "general" ? "Everyone" : "#" + name));
  if (r.private) top.appendChild(el("span", "room-tag", "private"));
  if (r.invited && !r.joined) top.appendChild(el("span", "room-tag", "invited"));
  main.appendChild(top);
  const count = Number.isSafeInteger(r.members) ? r.members + (r.members === 1 ? " member" : " members") : "everyone";
  main.appendChild(el("span", "room-sub", (typeof r.topic === "string" && r.topic ? r.topic + " · " : "") + count));
  const action = el("button", r.joined ? "btn-ghost room-open" : "btn-soft room-join", r.joined ? "Open" : "Join");
  action.type = "button";
  li.append(avatar, main, action);
  return li;
}

// The "rooms" answer: general first, then the rooms this user is in, then the others they may see (the server's order).
export function renderRooms(list, more) {
  ui.roomsList.replaceChildren(...list.map(roomItem));
  const others = list.filter((r) => !r.joined).length;
  setStatus(ui.roomsStatus, more ? "More rooms exist than the list shows." : others ? "" : "No other rooms yet: create one below.");
}

// Open the members dialog for `room`, its list to be filled by renderMembers.
export function openMembers(room) {
  membersRoom = room;
  ui.membersTitle.textContent = room === "general" ? "Everyone online" : "Members of #" + room;
  ui.membersList.replaceChildren();
  setStatus(ui.membersStatus, "Loading members…");
  if (!ui.membersDialog.open) ui.membersDialog.showModal();
}

export function closeMembers() {
  if (ui.membersDialog.open) ui.membersDialog.close();
}

export function showMembersError(text) {
  setStatus(ui.membersStatus, text);
}

function memberItem(room, m, me) {
  const li = el("li", "member" + (m.online ? " online" : ""));
  li.dataset.user = m.user;
  const avatar = el("span");
  setAvatar(avatar, m.user);
  avatar.appendChild(el("span", "presence-dot"));
  li.append(avatar, el("span", "member-name", m.user === me ? m.user + " (you)" : m.user));
  if (typeof m.role === "string" && m.role !== "member") li.appendChild(el("span", "room-tag", m.role));
  if (m.user !== me && rooms.outranks(room, m.role)) {
    const kick = el("button", "btn-ghost member-kick", "Kick");
    kick.type = "button";
    kick.title = "Remove " + m.user + " from #" + room;
    li.appendChild(kick);
  }
  return li;
}

// The "members" answer for `room` (ignored when the dialog shows another room, or none).
export function renderMembers(room, members, more, me) {
  if (!membersOpen() || room !== membersRoom) return;
  ui.membersList.replaceChildren(...members.map((m) => memberItem(room, m, me)));
  setStatus(ui.membersStatus, more ? "More members than the list shows." : members.length ? "" : "Nobody is in this room.");
}

// The create form's fields: {room, private, topic}.
export function createFields() {
  return {
    room: ui.createRoomName.value.trim().replace(/^#/, "").toLowerCase(),
    private: ui.createRoomPrivate.checked,
    topic: ui.createRoomTopic.value.trim(),
  };
}

export function resetCreateForm() {
  ui.createRoom.reset();
  ui.roomsError.hidden = true;
}
