// The members dialog: the room's members with roles and online dots; for owners and moderators Kick and Ban on those they outrank and a name field to invite, ban or unban; for the owner buttons that make moderators and members. It shows what it is given and sends nothing.

import { el, setAvatar, ui } from "../dom.js";
import { normalizeName } from "../format.js";
import * as rooms from "../rooms.js";

let membersRoom = null; // the room the members dialog shows

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

// The answer to the last action taken in the dialog (cleared when the next one is asked).
export function clearOutcome() {
  setStatus(ui.membersError, "");
  setStatus(ui.membersDone, "");
}

// Open the members dialog for `room`, its list to be filled by renderMembers.
export function openMembers(room) {
  if (membersRoom !== room) ui.memberTools.reset();
  membersRoom = room;
  ui.membersTitle.textContent = room === "general" ? "Everyone online" : "Members of #" + room;
  ui.membersList.replaceChildren();
  ui.memberTools.hidden = true;
  clearOutcome();
  setStatus(ui.membersStatus, "Loading members…");
  if (!ui.membersDialog.open) ui.membersDialog.showModal();
}

export function closeMembers() {
  if (ui.membersDialog.open) ui.membersDialog.close();
}

// A refusal of what was asked in the dialog (the list, a kick, an invitation…).
export function showMembersError(text) {
  setStatus(ui.membersDone, "");
  setStatus(ui.membersError, text);
}

// What an acknowledged action did; `clearName`: the name field has done its job.
export function showMembersDone(text, clearName) {
  setStatus(ui.membersError, "");
  setStatus(ui.membersDone, text);
  if (clearName) ui.memberToolsName.value = "";
}

function actionButton(className, text, title) {
  const button = el("button", "btn-ghost small " + className, text);
  button.type = "button";
  button.title = title;
  return button;
}

function memberItem(room, m, me) {
  const li = el("li", "member" + (m.online ? " online" : ""));
  li.dataset.user = m.user;
  const avatar = el("span");
  setAvatar(avatar, m.user);
  avatar.appendChild(el("span", "presence-dot"));
  li.append(avatar, el("span", "member-name", m.user === me ? m.user + " (you)" : m.user));
  if (typeof m.role === "string" && m.role !== "member") li.appendChild(el("span", "room-tag", m.role));
  if (m.user === me) return li;
  const actions = el("span", "member-actions");
  if (rooms.isOwner(room) && (m.role === "member" || m.role === "moderator")) {
    const promote = m.role === "member";
    const button = actionButton("member-role", promote ? "Make moderator" : "Make member", promote ? "Let " + m.user + " moderate #" + room : "Make " + m.user + " a plain member of #" + room);
    button.dataset.role = promote ? "moderator" : "member";
    actions.appendChild(button);
  }
  if (rooms.outranks(room, m.role)) {
    actions.appendChild(actionButton("member-kick", "Kick", "Remove " + m.user + " from #" + room));
    actions.appendChild(actionButton("member-ban", "Ban", "Remove " + m.user + " from #" + room + " and keep them out"));
  }
  if (actions.childNodes.length) li.appendChild(actions);
  return li;
}

// The "members" answer for `room` (ignored when the dialog shows another room, or none); owners and moderators get the
// name field.
export function renderMembers(room, members, more, me) {
  if (!membersOpen() || room !== membersRoom) return;
  ui.membersList.replaceChildren(...members.map((m) => memberItem(room, m, me)));
  ui.memberTools.hidden = !rooms.canModerate(room);
  setStatus(ui.membersStatus, more ? "More members than the list shows." : members.length ? "" : "Nobody is in this room.");
}

// The name typed in the name field, or null (with the reason shown) when it is not a user name.
export function toolsName() {
  const raw = ui.memberToolsName.value.trim().replace(/^@/, "");
  const name = normalizeName(raw);
  if (!name) showMembersError(raw ? "“" + raw + "” is not a user name." : "Type a name first.");
  return name;
}
