// A message's actions on the page: Reply, React (a small emoji picker and the reaction chips), Edit (an inline editor: Enter saves, Escape cancels), Delete (after a confirmation), and a reply's quote that scrolls to what it answers.

import { GROUP } from "./config.js";
import { el, showNotice, ui } from "./dom.js";
import { isRoomKey } from "./format.js";
import * as lifecycle from "./lifecycle.js";
import * as reply from "./reply.js";
import * as rooms from "./rooms.js";
import * as state from "./state.js";
import { modelOf, render } from "./views/messageparts.js";

export const COMMON_EMOJI = ["👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "👀", "✅", "🔥"];

let picker = null; // the open emoji picker's element

// The message <li> a control belongs to, its id (null while it waits for its ack) and model.
function messageOf(node) {
  const li = node.closest("li.msg");
  const model = modelOf(li);
  const id = li && li.dataset.id !== undefined ? Number(li.dataset.id) : null;
  return model && Number.isSafeInteger(id) ? { li: li, id: id, model: model } : null;
}

// ---- reactions ----

function closePicker(focusBack) {
  if (!picker) return;
  const button = picker.parentElement && picker.parentElement.querySelector(".act-react");
  picker.remove();
  picker = null;
  if (focusBack && button) button.focus();
}

function openPicker(msg, button) {
  closePicker(false);
  const keys = COMMON_EMOJI.concat(Array.from(msg.model.reactions.keys()).filter((k) => !COMMON_EMOJI.includes(k)));
  picker = el("div", "emoji-picker");
  picker.setAttribute("role", "group");
  picker.setAttribute("aria-label", "Pick a reaction");
  keys.forEach((key) => {
    const b = el("button", "picker-emoji", key);
    b.type = "button";
    b.dataset.key = key;
    b.title = "React with " + key;
    picker.appendChild(b);
  });
  button.parentElement.appendChild(picker);
  picker.firstElementChild.focus();
}

// Add this user's reaction `key` to the message, or take it back if it is there.
function toggleReaction(msg, key) {
  const users = msg.model.reactions.get(key) || [];
  const op = users.includes(state.me()) ? "remove" : "add";
  const problem = lifecycle.requestReaction(msg.model.key, msg.id, key, op, showNotice);
  if (problem) showNotice(problem);
}

// ---- editing ----

function closeEditor(li) {
  const form = li.querySelector(".edit-form");
  if (!form) return;
  form.remove();
  li.classList.remove("editing");
  li.querySelectorAll(".bubble .text, .bubble .edited").forEach((n) => (n.hidden = false));
  render(li);
}

function editorStatus(form, text, isError) {
  const status = form.querySelector(".edit-status");
  status.textContent = text;
  status.classList.toggle("error", Boolean(isError));
}

function openEditor(msg) {
  const li = msg.li;
  if (li.querySelector(".edit-form")) return;
  const bubble = li.querySelector(".bubble");
  const form = el("form", "edit-form");
  const input = el("textarea", "edit-input");
  input.value = msg.model.text;
  input.rows = Math.min(8, msg.model.text.split("\n").length);
  input.setAttribute("aria-label", "Edit the message");
  const save = el("button", "btn-soft small edit-save", "Save");
  save.type = "submit";
  const cancel = el("button", "btn-ghost small edit-cancel", "Cancel");
  cancel.type = "button";
  const row = el("div", "edit-row");
  row.append(el("span", "edit-status", "Enter to save · Escape to cancel"), cancel, save);
  form.append(input, row);
  bubble.querySelectorAll(".text, .edited").forEach((n) => (n.hidden = true));
  bubble.appendChild(form);
  li.classList.add("editing");
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);
}

function saveEdit(msg, form) {
  const input = form.querySelector(".edit-input");
  const text = input.value.replace(/^(?:[ \t]*\n)+/, "").replace(/(?:\n[ \t]*)+$/, "");
  if (text === msg.model.text) {
    finishEditing(msg.li);
    return;
  }
  if (!text.trim()) {
    editorStatus(form, "A message cannot be empty: delete it instead.", true);
    return;
  }
  const problem = lifecycle.requestEdit(msg.model.key, msg.id, text, () => finishEditing(msg.li), (why) => {
    input.readOnly = false;
    editorStatus(form, why, true);
  });
  if (problem) {
    editorStatus(form, problem, true);
    return;
  }
  input.readOnly = true;
  editorStatus(form, "Saving…");
}

function finishEditing(li) {
  const had = li.querySelector(".edit-form") !== null;
  closeEditor(li);
  if (had && li.isConnected) li.querySelector(".act-edit").focus();
}

// ---- deleting ----

function openDeleteConfirm(msg) {
  const body = msg.li.querySelector(".msg-body");
  let box = body.querySelector(".delete-confirm");
  if (!box) {
    box = el("div", "delete-confirm");
    box.setAttribute("role", "alertdialog");
    box.setAttribute("aria-label", "Delete this message?");
    const yes = el("button", "btn-danger small delete-yes", "Delete");
    yes.type = "button";
    const no = el("button", "btn-ghost small delete-no", "Cancel");
    no.type = "button";
    box.append(el("span", "delete-question", msg.model.user === state.me() ? "Delete this message for everyone?" : "Delete " + msg.model.user + "’s message for everyone?"), no, yes);
    body.appendChild(box);
  }
  box.querySelector(".delete-yes").focus();
}

function closeDeleteConfirm(li, focusBack) {
  const box = li.querySelector(".delete-confirm");
  if (box) box.remove();
  const button = li.querySelector(".act-delete");
  if (focusBack && button) button.focus();
}

function confirmDelete(msg, box) {
  const question = box.querySelector(".delete-question");
  const problem = lifecycle.requestDelete(msg.model.key, msg.id, () => closeDeleteConfirm(msg.li, false), (why) => {
    question.textContent = why;
    box.classList.add("error");
  });
  if (problem) {
    question.textContent = problem;
    box.classList.add("error");
  } else {
    question.textContent = "Deleting…";
    box.classList.remove("error");
  }
}

// Deleting someone else's message: in a named room that this user moderates, or anywhere for a server admin.
function mayDelete(model) {
  if (model.user === state.me()) return true;
  if (state.isAdmin() && (isRoomKey(model.key) || model.key === GROUP)) return true;
  return isRoomKey(model.key) && rooms.canModerate(model.key.slice(1));
}

// ---- quotes ----

function showOriginal(quote) {
  const c = state.activeConv();
  const li = c && c.byId.get(Number(quote.dataset.of));
  if (!li || !li.isConnected) {
    showNotice("The message this answers is not loaded: load older messages to see it.");
    return;
  }
  li.scrollIntoView({ block: "center" });
  li.classList.remove("flash");
  void li.offsetWidth; // restart the highlight's animation
  li.classList.add("flash");
  const focusable = li.querySelector(".msg-act");
  if (focusable) focusable.focus({ preventScroll: true });
}

// ---- wiring ----

ui.thread.addEventListener("click", (e) => {
  const button = e.target.closest("button");
  if (!button || !ui.thread.contains(button)) return;
  if (button.classList.contains("quote")) {
    showOriginal(button);
    return;
  }
  const msg = messageOf(button);
  if (!msg) return;
  const cls = button.classList;
  if (cls.contains("act-reply")) reply.start(msg.model.key, msg.id, msg.model.user, msg.model.file ? "a file" : msg.model.text);
  else if (cls.contains("act-react")) picker && picker.parentElement === button.parentElement ? closePicker(true) : openPicker(msg, button);
  else if (cls.contains("picker-emoji") || cls.contains("reaction-chip")) {
    toggleReaction(msg, button.dataset.key);
    if (cls.contains("picker-emoji")) closePicker(true);
  } else if (cls.contains("act-edit")) openEditor(msg);
  else if (cls.contains("edit-cancel")) finishEditing(msg.li);
  else if (cls.contains("act-delete")) {
    if (mayDelete(msg.model)) openDeleteConfirm(msg);
    else showNotice("Only its author, a moderator of the room or a server admin can delete that message.");
  } else if (cls.contains("delete-no")) closeDeleteConfirm(msg.li, true);
  else if (cls.contains("delete-yes")) confirmDelete(msg, button.closest(".delete-confirm"));
});

ui.thread.addEventListener("submit", (e) => {
  const form = e.target.closest(".edit-form");
  if (!form) return;
  e.preventDefault();
  const msg = messageOf(form);
  if (msg) saveEdit(msg, form);
});

ui.thread.addEventListener("keydown", (e) => {
  if (e.target.classList.contains("edit-input")) {
    const msg = messageOf(e.target);
    if (!msg) return;
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      saveEdit(msg, e.target.form);
    } else if (e.key === "Escape") {
      e.preventDefault();
      finishEditing(msg.li);
    }
  } else if (e.key === "Escape" && picker && picker.contains(e.target)) {
    e.preventDefault();
    closePicker(true);
  } else if (e.key === "Escape" && e.target.closest(".delete-confirm")) {
    e.preventDefault();
    closeDeleteConfirm(e.target.closest("li"), true);
  }
});

// A click anywhere but the picker (or its React button) closes it.
document.addEventListener("click", (e) => {
  if (picker && !picker.contains(e.target) && !(e.target.closest && e.target.closest(".act-react"))) closePicker(false);
});
