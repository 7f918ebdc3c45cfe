// The open room's header controls for owners and moderators: the Topic button and the topic editor under the header; they show what they are given and send nothing.

import { MAX_TOPIC } from "../config.js";
import { ui } from "../dom.js";
import * as rooms from "../rooms.js";
import * as state from "../state.js";

let editing = null; // the room whose topic the editor shows

ui.topicInput.maxLength = MAX_TOPIC;

// The header shows `room` (null: not a named room; `general`: the group chat): the Topic button for those who may set
// it; the editor closes when it was for another room or this user may no longer set the topic.
export function syncRoomControls(room, general) {
  const may = room !== null && rooms.canModerate(room);
  ui.roomTopic.hidden = !may;
  // Delete on others' messages (js/views/messageparts.js): a room's moderators; a server admin in general and rooms.
  ui.thread.classList.toggle("can-moderate", may || (state.isAdmin() && (room !== null || general)));
  if (editing !== null && (editing !== room || !may)) closeTopicEditor();
}

export function openTopicEditor(room) {
  editing = room;
  ui.topicInput.value = rooms.infoOf(room).topic;
  ui.topicError.hidden = true;
  ui.topicForm.hidden = false;
  ui.roomTopic.setAttribute("aria-expanded", "true");
  ui.topicInput.focus();
  ui.topicInput.select();
}

export function closeTopicEditor() {
  editing = null;
  ui.topicForm.hidden = true;
  ui.roomTopic.setAttribute("aria-expanded", "false");
}

export function topicEditorRoom() {
  return editing;
}

export function showTopicError(text) {
  ui.topicError.textContent = text;
  ui.topicError.hidden = false;
}

// The topic as the server will keep it: one line, runs of white space as one space.
export function topicText() {
  return ui.topicInput.value.trim().replace(/\s+/g, " ");
}
