// Files (signed-in users): dropped, pasted or picked, each uploaded with its own XHR (POST /files) and progress bar.

import { ACCOUNT, GROUP, MAX_UPLOAD, RETRY_LIMITS, UPLOADS, UPLOAD_RETRIES } from "./config.js";
import { el, linkButton, showNotice, ui } from "./dom.js";
import { fileSize, isRoomKey } from "./format.js";
import { onLive } from "./receive.js";
import * as state from "./state.js";

function csrfToken() {
  const field = ui.uploadForm && ui.uploadForm.elements.namedItem("csrf_token");
  return field ? field.value : "";
}

function uploadFiles(files) {
  if (!UPLOADS || !files || !files.length) return;
  if (!ACCOUNT) {
    showNotice("Sign in to share files: guests cannot upload.");
    return;
  }
  const c = state.activeConv();
  if (!c) return;
  if (isRoomKey(c.key)) {
    showNotice("Files can be shared with everyone or in a one-to-one chat, not in rooms yet."); // the server takes none
    return;
  }
  Array.from(files).forEach((file) => uploadFile(file, c.key));
}

// One file, one request, one progress bar. The message carrying it arrives over the socket like any other (and
// from the upload's answer, whichever comes first; ids keep it single).
function uploadFile(file, key) {
  const item = el("li", "upload");
  const head = el("div", "upload-head");
  head.append(el("span", "upload-name", file.name || "file"), el("span", "upload-where", key === GROUP ? "to everyone" : "to " + key));
  const bar = el("progress", "upload-bar");
  bar.max = 100;
  bar.value = 0;
  const foot = el("div", "upload-foot");
  const status = el("span", "upload-status", "Uploading… 0%");
  const cancel = linkButton("Cancel");
  foot.append(status, cancel);
  item.append(head, bar, foot);
  ui.uploads.appendChild(item);
  ui.uploads.hidden = false;

  const failed = (message) => {
    item.classList.add("failed");
    bar.remove();
    status.textContent = message;
    cancel.textContent = "Dismiss";
    cancel.onclick = () => removeUpload(item);
  };
  if (MAX_UPLOAD && file.size > MAX_UPLOAD) {
    failed("Too large: " + fileSize(file.size) + "; files may be up to " + fileSize(MAX_UPLOAD) + ".");
    return;
  }
  const form = new FormData();
  form.append("file", file, file.name || "file");
  if (key !== GROUP) form.append("to", key);
  let retryTimer = null;
  const send = (retriesLeft) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", ui.uploadForm.action);
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      const pct = Math.min(100, Math.round((e.loaded * 100) / e.total));
      bar.value = pct;
      status.textContent = "Uploading… " + pct + "%";
    });
    xhr.upload.addEventListener("load", () => {
      bar.removeAttribute("value"); // indeterminate while the server checks and stores it
      status.textContent = "Processing…";
    });
    xhr.addEventListener("load", () => {
      const r = xhr.response && typeof xhr.response === "object" ? xhr.response : {};
      if (xhr.status === 201 && typeof r.id === "number") {
        removeUpload(item);
        const ev = { type: r.to ? "direct" : "message", id: r.id, user: state.me(), msg: r.msg, ts: r.ts, attachment: r.attachment };
        if (r.to) ev.to = r.to;
        onLive(ev, true);
        return;
      }
      // Refused for now, nothing stored (too many uploads a minute, or every picture decoder busy): wait as the
      // server says, then send it again, a few times at most. Any other refusal is final.
      const wait = Number(xhr.getResponseHeader("Retry-After"));
      if (RETRY_LIMITS.includes(r.limit) && retriesLeft > 0 && wait > 0 && wait <= 120) {
        status.textContent = "Waiting " + wait + " s: " + (r.limit === "upload_rate" ? "too many uploads at once" : "the server is busy") + "…";
        bar.removeAttribute("value");
        retryTimer = setTimeout(() => send(retriesLeft - 1), wait * 1000);
        cancel.onclick = () => {
          clearTimeout(retryTimer);
          removeUpload(item);
        };
        return;
      }
      failed(typeof r.error === "string" ? "Not sent: " + r.error : "Not sent (HTTP " + xhr.status + ").");
    });
    xhr.addEventListener("error", () => failed("Not sent: the connection failed."));
    xhr.addEventListener("abort", () => removeUpload(item));
    cancel.onclick = () => xhr.abort();
    xhr.send(form);
  };
  send(UPLOAD_RETRIES);
}

function removeUpload(item) {
  item.remove();
  ui.uploads.hidden = ui.uploads.children.length === 0;
}

function carriesFiles(e) {
  return Boolean(e.dataTransfer) && Array.from(e.dataTransfer.types || []).indexOf("Files") >= 0;
}

let dragDepth = 0;

function showDropOverlay(show) {
  if (show) {
    const c = state.activeConv();
    if (!ACCOUNT) ui.dropText.textContent = "Sign in to share files";
    else if (c && isRoomKey(c.key)) ui.dropText.textContent = "Files cannot be shared in rooms yet";
    else ui.dropText.textContent = "Drop to share with " + (!c || c.key === GROUP ? "everyone" : c.key);
  }
  ui.dropOverlay.hidden = !show;
}

// Dropping on the conversation, the attach button and pasting files; nothing when the server takes no files.
export function enableUploads() {
  if (!UPLOADS || !ui.uploadForm) return;
  ui.chat.addEventListener("dragenter", (e) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();
    dragDepth += 1;
    showDropOverlay(true);
  });
  ui.chat.addEventListener("dragover", (e) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = ACCOUNT ? "copy" : "none";
  });
  ui.chat.addEventListener("dragleave", (e) => {
    if (!carriesFiles(e)) return;
    dragDepth = Math.max(0, dragDepth - 1);
    if (dragDepth === 0) showDropOverlay(false);
  });
  ui.chat.addEventListener("drop", (e) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();
    dragDepth = 0;
    showDropOverlay(false);
    uploadFiles(e.dataTransfer.files);
  });
  // A file dropped beside the conversation must not replace the page with itself.
  window.addEventListener("dragover", (e) => carriesFiles(e) && e.preventDefault());
  window.addEventListener("drop", (e) => carriesFiles(e) && e.preventDefault());
  ui.attach.addEventListener("click", () => ui.fileInput.click());
  ui.attach.addEventListener("mousedown", (e) => e.preventDefault()); // keep the focus in the input
  ui.fileInput.addEventListener("change", () => {
    uploadFiles(ui.fileInput.files);
    ui.fileInput.value = "";
    ui.input.focus();
  });
  ui.input.addEventListener("paste", (e) => {
    const files = e.clipboardData && e.clipboardData.files;
    if (files && files.length) {
      e.preventDefault();
      uploadFiles(files);
    }
  });
}
