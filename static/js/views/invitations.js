// The invitations bar above the composer: one line per pending invitation, with Join and Dismiss buttons; it shows what it is given and sends nothing.

import { el, ui } from "../dom.js";

function invitationItem(inv) {
  const li = el("li", "invitation");
  li.dataset.room = inv.room;
  const text = inv.by ? inv.by + " invited you to #" + inv.room : "You are invited to #" + inv.room;
  li.appendChild(el("span", "invitation-text", text));
  const join = el("button", "btn-soft small invitation-join", "Join");
  join.type = "button";
  join.title = "Join #" + inv.room;
  const dismiss = el("button", "icon-btn small invitation-dismiss", "×");
  dismiss.type = "button";
  dismiss.setAttribute("aria-label", "Dismiss the invitation to #" + inv.room);
  li.append(join, dismiss);
  return li;
}

// `list`: [{room, by}], oldest first.
export function renderInvitations(list) {
  ui.invitations.replaceChildren(...list.map(invitationItem));
  ui.invitations.hidden = list.length === 0;
}
