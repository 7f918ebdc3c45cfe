// The rooms dialog: the server's list (private and invited rooms marked) with Join/Open buttons, and the create form; it shows what it is given and sends nothing.

import { MAX_TOPIC } from "../config.js";
import { el, setAvatar, ui } from "../dom.js";

ui.createRoomTopic.maxLength = MAX_TOPIC;

export function roomsOpen() {
  return ui.roomsDialog.open;
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
