/*
 * The chat page: a conversation list ("Everyone" and one entry per one-to-one chat), who is online,
 * and the open conversation, all over one WebSocket to /ws/NAME (protocol: docs/protocol.md).
 *
 * - Each conversation loads its history from the server when opened ({"type":"history","with":NAME}),
 *   and older pages on demand ("before": the oldest id shown).
 * - Sent messages look pending until their "ack" (matched by "ref"); an "error" with that "ref" is shown
 *   next to the message it refused.
 * - When the socket drops the page reconnects with backoff and asks for "?since=LAST_ID": everything it
 *   missed is replayed, and every message is kept once per id.
 * - User-supplied text is only ever inserted with textContent, never parsed as HTML.
 * - Files (signed-in users): dropped on the conversation, pasted, or picked with the attach button; each is
 *   uploaded with its own XHR (POST /files) and progress bar, and comes back as a message with an "attachment":
 *   a thumbnail that opens the picture in a new tab, or a download link with the file's name and size.
 */
(function () {
  "use strict";

  const GROUP = "*"; // conversation key of the group chat; user names cannot contain "*"
  const MAX_NAME = Number(document.body.dataset.maxNameLength) || 32; // the server's setting
  const NAME_RE = new RegExp("^[a-z0-9][a-z0-9_.-]{0," + (MAX_NAME - 1) + "}$"); // as the server: starts with a letter or digit
  const PAGE_SIZE = 50;
  const MAX_FRAME_BYTES = 60 * 1024; // the server closes a socket that sends more than 64 KiB at once
  const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 10000];
  const SAME_BLOCK_MS = 5 * 60 * 1000; // consecutive messages of one sender within this are grouped
  const NAME_KEY = "chat.name"; // a guest's name, remembered for the next visit
  // A guest's resume token for its name (the welcome gives it): only it reopens the name while the server holds it
  // for this guest, so reconnects and the next visit keep the name and its messages (docs/protocol.md).
  const resumeKey = (name) => "chat.resume." + name;
  // Signed in (the server put the account's name on the page): the socket's handshake carries the session
  // cookie, so the page connects as that name with no name picker. Otherwise the visitor is a guest.
  const ACCOUNT = document.body.dataset.user || null;
  const GUESTS = document.body.dataset.allowGuests !== "false";
  const CLOSE_CREDENTIALS_ENDED = 4001; // signed out, token revoked, account removed, or the guest's name registered
  const UPLOADS = document.body.dataset.uploads === "true"; // the server accepts some kinds of file
  const MAX_UPLOAD = Number(document.body.dataset.maxUpload) || 0; // bytes; the server says the same with a 413
  // Refusals that only say "not now" (HTTP 429/503 naming one of these limits, with Retry-After): sent again later.
  const RETRY_LIMITS = ["upload_rate", "image_decode_concurrency"];
  const UPLOAD_RETRIES = 5;
  const convsKey = (me) => "chat.conversations." + me;

  const $ = (id) => document.getElementById(id);
  const ui = {
    joinScreen: $("join-screen"),
    joinForm: $("join-form"),
    joinName: $("join-name"),
    joinError: $("join-error"),
    app: $("app"),
    meAvatar: $("me-avatar"),
    meName: $("me-name"),
    switchUser: $("switch-user"),
    conversations: $("conversations"),
    online: $("online"),
    onlineCount: $("online-count"),
    back: $("back"),
    backBadge: $("back-badge"),
    chatAvatar: $("chat-avatar"),
    chatTitle: $("chat-title"),
    chatSub: $("chat-sub"),
    conn: $("conn"),
    connText: $("conn-text"),
    banner: $("banner"),
    bannerText: $("banner-text"),
    retryNow: $("retry-now"),
    messages: $("messages"),
    loadOlder: $("load-older"),
    thread: $("thread"),
    empty: $("empty"),
    notice: $("notice"),
    noticeText: $("notice-text"),
    noticeClose: $("notice-close"),
    composer: $("composer"),
    input: $("input"),
    send: $("send"),
    chat: $("chat"),
    uploads: $("uploads"),
    dropOverlay: $("drop-overlay"),
    dropText: $("drop-text"),
    uploadForm: $("upload-form"),
    fileInput: $("file-input"),
    attach: $("attach"),
  };

  const state = {
    me: null,
    ws: null,
    wantConnected: false,
    welcomed: false, // the current socket has received its welcome
    everWelcomed: false, // some socket did: reconnects ask for ?since=
    resumable: false, // a connect-time history in several events was cut off: reconnects ask for ?since= too
    attempts: 0,
    retryTimer: 0,
    retryAt: 0,
    countdown: 0,
    lastId: 0, // the newest message id this page has seen live or in a replay
    convs: new Map(), // key -> conversation
    active: null,
    online: new Set(),
    seq: 0,
    pending: new Map(), // ref -> pending message, in the order they were written
    requests: new Map(), // ref -> {key, kind} of history requests in flight
    noticeTimer: 0,
  };

  // ---- small helpers -------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function normalizeName(raw) {
    const name = String(raw || "").trim().toLowerCase();
    return NAME_RE.test(name) ? name : null;
  }

  function colorClass(name) {
    let h = 7;
    for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
    return "c" + (h % 8);
  }

  function setAvatar(node, key) {
    node.className = "avatar " + (key === GROUP ? "group" : colorClass(key));
    const letter = key === GROUP ? "#" : ((key.match(/[a-z0-9]/) || [key.charAt(0)])[0] || "?").toUpperCase();
    node.textContent = letter;
  }

  function titleOf(key) {
    return key === GROUP ? "Everyone" : key;
  }

  function parseTs(ts) {
    const t = Date.parse(ts);
    return Number.isNaN(t) ? Date.now() : t;
  }

  function sameDay(a, b) {
    return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
  }

  function clock(d) {
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function messageTime(ms) {
    const d = new Date(ms);
    return sameDay(d, new Date()) ? clock(d) : d.toLocaleDateString([], { month: "short", day: "numeric" }) + ", " + clock(d);
  }

  function listTime(ms) {
    const d = new Date(ms);
    return sameDay(d, new Date()) ? clock(d) : d.toLocaleDateString([], { month: "short", day: "numeric" });
  }

  function oneLine(text, max) {
    const flat = String(text).replace(/\s+/g, " ").trim();
    return flat.length > max ? flat.slice(0, max - 1) + "…" : flat;
  }

  function load(key, fallback) {
    try {
      const raw = window.localStorage.getItem(key);
      return raw === null ? fallback : JSON.parse(raw);
    } catch (e) {
      return fallback;
    }
  }

  function save(key, value) {
    try {
      if (value === null) window.localStorage.removeItem(key);
      else window.localStorage.setItem(key, JSON.stringify(value));
    } catch (e) {
      /* storage unavailable (private mode): the page still works, it just forgets */
    }
  }

  // ---- conversations -------------------------------------------------------------------

  function getConv(key) {
    let c = state.convs.get(key);
    if (!c) {
      c = {
        key: key,
        list: el("ol", "thread"),
        byId: new Map(), // message id -> its <li>
        unread: 0,
        loaded: false,
        loading: false,
        more: false,
        last: null, // {id, user, msg, t} of the newest message, for the list preview
        item: null,
      };
      c.list.dataset.conv = key;
      state.convs.set(key, c);
    }
    return c;
  }

  function rememberConv(key) {
    if (key === GROUP || !state.me) return;
    const known = load(convsKey(state.me), []);
    if (Array.isArray(known) && known.indexOf(key) < 0) {
      known.push(key);
      save(convsKey(state.me), known.slice(-200));
    }
  }

  function noteLast(c, last) {
    if (!c.last || last.id >= c.last.id) c.last = last;
  }

  function convItem(c) {
    if (c.item) return c.item;
    const li = el("li", "conv");
    li.dataset.conv = c.key;
    const btn = el("button", "conv-btn");
    btn.type = "button";
    const avatar = el("span");
    setAvatar(avatar, c.key);
    avatar.appendChild(el("span", "presence-dot"));
    const main = el("span", "conv-main");
    const top = el("span", "conv-top");
    const name = el("span", "conv-name", titleOf(c.key));
    const time = el("span", "conv-time");
    top.append(name, time);
    const bottom = el("span", "conv-bottom");
    const preview = el("span", "conv-preview");
    const badge = el("span", "badge");
    badge.hidden = true;
    bottom.append(preview, badge);
    main.append(top, bottom);
    btn.append(avatar, main);
    btn.addEventListener("click", () => openConv(c.key));
    li.appendChild(btn);
    c.item = { li: li, btn: btn, time: time, preview: preview, badge: badge };
    return c.item;
  }

  function renderConvItem(c) {
    const it = convItem(c);
    const last = c.last;
    if (last) {
      const who = last.user === state.me ? "You: " : c.key === GROUP ? last.user + ": " : "";
      it.preview.textContent = who + oneLine(last.msg, 90);
      it.time.textContent = listTime(last.t);
    } else {
      it.preview.textContent = c.key === GROUP ? "Group chat with everyone" : "No messages yet";
      it.time.textContent = "";
    }
    it.badge.textContent = c.unread > 99 ? "99+" : String(c.unread);
    it.badge.hidden = c.unread === 0;
    const active = c === state.active;
    it.li.classList.toggle("active", active);
    if (active) it.btn.setAttribute("aria-current", "true");
    else it.btn.removeAttribute("aria-current");
    it.li.classList.toggle("unread", c.unread > 0);
    it.li.classList.toggle("online", c.key !== GROUP && state.online.has(c.key));
    it.btn.setAttribute("aria-label", titleOf(c.key) + (c.unread ? ", " + c.unread + " unread" : ""));
  }

  function renderConvList() {
    const convs = Array.from(state.convs.values());
    convs.sort((a, b) => {
      if (a.key === GROUP) return -1;
      if (b.key === GROUP) return 1;
      const ta = a.last ? a.last.t : 0;
      const tb = b.last ? b.last.t : 0;
      return tb - ta || (a.key < b.key ? -1 : 1);
    });
    let total = 0;
    convs.forEach((c, i) => {
      renderConvItem(c);
      if (ui.conversations.children[i] !== c.item.li) ui.conversations.insertBefore(c.item.li, ui.conversations.children[i] || null);
      total += c.unread;
    });
    ui.backBadge.textContent = total > 99 ? "99+" : String(total);
    ui.backBadge.hidden = total === 0;
    document.title = (total ? "(" + total + ") " : "") + "Chat";
  }

  function renderOnline() {
    const names = Array.from(state.online).filter((n) => n !== state.me).sort();
    const items = [];
    if (state.me) {
      const li = el("li", "person me");
      const avatar = el("span");
      setAvatar(avatar, state.me);
      li.append(avatar, el("span", "person-name", state.me), el("span", "you", "you"));
      items.push(li);
    }
    names.forEach((name) => {
      const li = el("li", "person");
      li.dataset.user = name;
      const btn = el("button", "person-btn");
      btn.type = "button";
      btn.title = "Chat with " + name;
      const avatar = el("span");
      setAvatar(avatar, name);
      avatar.appendChild(el("span", "presence-dot"));
      btn.append(avatar, el("span", "person-name", name));
      btn.addEventListener("click", () => openConv(name));
      li.appendChild(btn);
      items.push(li);
    });
    ui.online.replaceChildren.apply(ui.online, items);
    ui.onlineCount.textContent = String(state.online.size || (state.me ? 1 : 0));
    renderHeader();
    renderConvList();
  }

  function renderHeader() {
    const c = state.active;
    if (!c) return;
    setAvatar(ui.chatAvatar, c.key);
    ui.chatTitle.textContent = titleOf(c.key);
    if (c.key === GROUP) {
      const n = state.online.size;
      ui.chatSub.textContent = n ? n + (n === 1 ? " person online" : " people online") : "Group chat";
      ui.chatAvatar.classList.remove("online");
    } else {
      const on = state.online.has(c.key);
      ui.chatSub.textContent = on ? "online" : "offline";
      ui.chatAvatar.classList.toggle("online", on);
      ui.chatAvatar.appendChild(el("span", "presence-dot"));
    }
  }

  function renderThreadChrome() {
    const c = state.active;
    if (!c) return;
    const hasMessages = c.list.firstElementChild !== null;
    ui.loadOlder.hidden = !(c.loaded && c.more && hasMessages) && !(c.loading && hasMessages);
    ui.loadOlder.disabled = c.loading;
    ui.loadOlder.textContent = c.loading ? "Loading…" : "Load older messages";
    if (hasMessages) {
      ui.empty.hidden = true;
    } else {
      ui.empty.hidden = false;
      if (!c.loaded) ui.empty.textContent = "Loading messages…";
      else if (c.key === GROUP) ui.empty.textContent = "No messages yet. Say hello to everyone!";
      else ui.empty.textContent = "This is the start of your conversation with " + c.key + ".";
    }
  }

  function openConv(key, opts) {
    opts = opts || {};
    const c = getConv(key);
    state.active = c;
    c.unread = 0;
    ui.thread.replaceChildren(c.list);
    ui.input.placeholder = key === GROUP ? "Message everyone" : "Message " + key;
    renderHeader();
    renderConvList();
    if (!c.loaded && !c.loading) requestHistory(c, "open");
    renderThreadChrome();
    scrollToBottom();
    const url = key === GROUP ? location.pathname : location.pathname + "?with=" + encodeURIComponent(key);
    if (location.pathname + location.search !== url) history.replaceState(null, "", url);
    ui.app.classList.remove("show-list");
    if (!opts.noFocus) ui.input.focus();
  }

  // ---- messages ------------------------------------------------------------------------

  function convKeyOf(m) {
    if (m.type === "direct") return m.user === state.me ? normalizeName(m.to) : normalizeName(m.user);
    return GROUP;
  }

  function buildMessage(user, text, t, own, attachment) {
    const li = el("li", own ? "msg own" : "msg");
    li.dataset.user = user;
    li.dataset.t = String(t);
    if (!own) {
      const avatar = el("span");
      setAvatar(avatar, user);
      li.appendChild(avatar);
    }
    const body = el("div", "msg-body");
    const meta = el("div", "meta");
    meta.appendChild(el("span", "sender", own ? "You" : user));
    const time = el("time", "time", messageTime(t));
    time.dateTime = new Date(t).toISOString();
    time.title = new Date(t).toLocaleString();
    meta.appendChild(time);
    const bubble = el("div", "bubble");
    if (attachment) {
      bubble.classList.add("has-attachment", attachment.image ? "has-picture" : "has-file");
      bubble.appendChild(buildAttachment(attachment));
    } else {
      bubble.appendChild(el("p", "text", text));
    }
    bubble.title = new Date(t).toLocaleString();
    body.append(meta, bubble);
    li.appendChild(body);
    return li;
  }

  // The "attachment" of a message event, if it is one this page can show (URLs only under /files/ on this server).
  function attachmentOf(m) {
    const a = m.attachment;
    if (!a || typeof a !== "object" || typeof a.id !== "number" || typeof a.name !== "string") return null;
    const local = (u) => typeof u === "string" && u.indexOf("/files/") === 0;
    if (!local(a.url)) return null;
    return {
      id: a.id,
      name: a.name,
      size: typeof a.size === "number" ? a.size : 0,
      url: a.url,
      thumb: local(a.thumb_url) ? a.thumb_url : null,
      image: a.image === true,
    };
  }

  function fileSize(n) {
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

  function attachmentPreview(a) {
    return (a.image ? "Picture: " : "File: ") + a.name;
  }

  // A picture: its thumbnail (or itself, when small), opening full size in a new tab. Anything else: a download link.
  function buildAttachment(a) {
    const link = el("a", a.image ? "attachment picture" : "attachment file");
    link.href = a.url;
    link.dataset.attachmentId = String(a.id);
    if (a.image) {
      link.target = "_blank";
      link.rel = "noopener";
      link.title = a.name + " (" + fileSize(a.size) + ")";
      const img = el("img", "thumb");
      img.alt = a.name;
      img.decoding = "async";
      img.src = a.thumb || a.url;
      img.addEventListener("load", () => {
        // It grew from nothing to its height: keep a reader who was at the bottom there.
        const s = ui.messages;
        if (link.isConnected && s.scrollHeight - s.scrollTop - s.clientHeight < 120 + img.offsetHeight) scrollToBottom();
      });
      link.appendChild(img);
    } else {
      link.download = a.name;
      link.rel = "noopener";
      const icon = el("span", "file-icon");
      icon.setAttribute("aria-hidden", "true");
      const ext = a.name.lastIndexOf(".") > 0 ? a.name.slice(a.name.lastIndexOf(".") + 1, a.name.length).slice(0, 4) : "";
      icon.textContent = ext.toUpperCase() || "FILE";
      const text = el("span", "file-text");
      text.append(el("span", "file-name", a.name), el("span", "file-size", fileSize(a.size)));
      link.append(icon, text);
    }
    return link;
  }

  function setMessageTime(li, t) {
    li.dataset.t = String(t);
    const time = li.querySelector("time");
    time.textContent = messageTime(t);
    time.dateTime = new Date(t).toISOString();
    time.title = new Date(t).toLocaleString();
    li.querySelector(".bubble").title = time.title;
  }

  function regroup(li) {
    if (!li) return;
    const prev = li.previousElementSibling;
    const cont =
      prev !== null &&
      prev.dataset.user === li.dataset.user &&
      !prev.classList.contains("failed") &&
      Math.abs(Number(li.dataset.t) - Number(prev.dataset.t)) < SAME_BLOCK_MS;
    li.classList.toggle("cont", cont);
  }

  // Messages with ids stay in id order; messages still waiting for their ack stay at the end.
  function insertOrdered(c, li, id) {
    let after = c.list.lastElementChild;
    while (after && (after.dataset.id === undefined || Number(after.dataset.id) > id)) after = after.previousElementSibling;
    const next = after ? after.nextElementSibling : c.list.firstElementChild;
    c.list.insertBefore(li, next);
    regroup(li);
    regroup(li.nextElementSibling);
  }

  function addMessage(m, opts) {
    if (!m || typeof m.id !== "number" || typeof m.msg !== "string" || typeof m.user !== "string") return false;
    const key = convKeyOf(m);
    if (!key) return false;
    const c = getConv(key);
    if (c.byId.has(m.id)) return false; // already shown: replays and history pages overlap
    const own = m.user === state.me;
    if (own && opts.replay && claimUnconfirmed(c, m)) return false;
    const t = parseTs(m.ts);
    const attachment = attachmentOf(m);
    const li = buildMessage(m.user, m.msg, t, own, attachment);
    li.dataset.id = String(m.id);
    c.byId.set(m.id, li);
    insertOrdered(c, li, m.id);
    noteLast(c, { id: m.id, user: m.user, msg: attachment ? attachmentPreview(attachment) : m.msg, t: t });
    rememberConv(key);
    if (opts.unread && !own && (c !== state.active || document.hidden)) c.unread += 1;
    return true;
  }

  function noteId(id) {
    if (typeof id === "number" && id > state.lastId) state.lastId = id;
  }

  function setPendingStatus(p, text, failed) {
    let status = p.li.querySelector(".status");
    if (!status) {
      status = el("div", "status");
      p.li.querySelector(".msg-body").appendChild(status);
    }
    status.replaceChildren(el("span", "status-text", text));
    if (failed) {
      const retry = el("button", "link-btn", "Retry");
      retry.type = "button";
      retry.addEventListener("click", () => retryFailed(p));
      const remove = el("button", "link-btn", "Delete");
      remove.type = "button";
      remove.addEventListener("click", () => discardFailed(p));
      status.append(retry, remove);
    }
  }

  function sendText(text) {
    const c = state.active;
    const ref = "m" + ++state.seq + "." + Date.now().toString(36);
    const payload = c.key === GROUP ? { type: "message", msg: text, ref: ref } : { type: "direct", to: c.key, msg: text, ref: ref };
    const size = new TextEncoder().encode(JSON.stringify(payload)).length;
    if (size > MAX_FRAME_BYTES) {
      showNotice("That message is too long to send (" + Math.ceil(size / 1024) + " KiB; the limit is 60 KiB).");
      return false;
    }
    const t = Date.now();
    const li = buildMessage(state.me, text, t, true);
    li.classList.add("pending");
    li.dataset.ref = ref;
    c.list.appendChild(li);
    regroup(li);
    const p = { ref: ref, key: c.key, text: text, payload: payload, li: li, state: "queued", last: null };
    p.last = { id: Number.MAX_SAFE_INTEGER, user: state.me, msg: text, t: t };
    noteLast(c, p.last);
    state.pending.set(ref, p);
    transmit(p);
    renderConvList();
    renderThreadChrome();
    scrollToBottom();
    return true;
  }

  function transmit(p) {
    if (state.welcomed && state.ws && state.ws.readyState === WebSocket.OPEN) {
      state.ws.send(JSON.stringify(p.payload));
      p.state = "sent";
      setPendingStatus(p, "Sending…");
    } else {
      p.state = "queued";
      setPendingStatus(p, "Waiting for connection…");
    }
  }

  // The server stored it: the pending message becomes a normal one, in its id's place.
  function confirm(p, id, ts) {
    state.pending.delete(p.ref);
    const c = getConv(p.key);
    const li = p.li;
    if (c.byId.has(id)) {
      const next = li.nextElementSibling;
      li.remove();
      regroup(next);
    } else {
      li.classList.remove("pending");
      delete li.dataset.ref;
      li.dataset.id = String(id);
      const status = li.querySelector(".status");
      if (status) status.remove();
      if (ts) setMessageTime(li, parseTs(ts));
      c.byId.set(id, li);
      const next = li.nextElementSibling;
      li.remove();
      regroup(next);
      insertOrdered(c, li, id);
    }
    p.last.id = id;
    if (ts) p.last.t = parseTs(ts);
    rememberConv(p.key); // only once the server took a message: a mistyped name is not kept
  }

  // After a reconnect: a message sent just before the drop may have been stored; its copy in the replay settles it.
  function claimUnconfirmed(c, m) {
    for (const p of state.pending.values()) {
      if (p.state === "unconfirmed" && p.key === c.key && p.text === m.msg) {
        confirm(p, m.id, m.ts);
        return true;
      }
    }
    return false;
  }

  function fail(p, message) {
    state.pending.delete(p.ref);
    p.state = "failed";
    p.li.classList.remove("pending");
    p.li.classList.add("failed");
    setPendingStatus(p, message, true);
  }

  function retryFailed(p) {
    p.ref = "m" + ++state.seq + "." + Date.now().toString(36);
    p.payload.ref = p.ref;
    p.li.dataset.ref = p.ref;
    p.li.classList.remove("failed");
    p.li.classList.add("pending");
    const c = getConv(p.key);
    c.list.appendChild(p.li); // to the end, after anything that arrived meanwhile
    regroup(p.li);
    state.pending.set(p.ref, p);
    transmit(p);
    ui.input.focus();
  }

  function discardFailed(p) {
    const c = getConv(p.key);
    const next = p.li.nextElementSibling;
    p.li.remove();
    regroup(next);
    if (c.last === p.last) {
      // The list preview showed the discarded message: show the newest one left instead.
      const li = c.list.lastElementChild;
      c.last = li ? { id: Number(li.dataset.id) || 0, user: li.dataset.user, msg: li.querySelector(".text").textContent, t: Number(li.dataset.t) } : null;
    }
    renderConvList();
    renderThreadChrome();
    ui.input.focus();
  }

  function flushPending() {
    for (const p of Array.from(state.pending.values())) {
      if (p.state === "queued" || p.state === "unconfirmed") transmit(p);
    }
  }

  // ---- history -------------------------------------------------------------------------

  function requestHistory(c, kind) {
    if (!(state.welcomed && state.ws && state.ws.readyState === WebSocket.OPEN)) return;
    const ref = "h" + ++state.seq;
    const req = { type: "history", limit: kind === "preview" ? 1 : PAGE_SIZE, ref: ref };
    if (c.key !== GROUP) req.with = c.key;
    if (kind === "older") {
      const first = c.list.querySelector("li[data-id]");
      if (!first) return;
      req.before = Number(first.dataset.id);
    }
    state.requests.set(ref, { key: c.key, kind: kind });
    if (kind !== "preview") c.loading = true;
    state.ws.send(JSON.stringify(req));
    if (c === state.active) renderThreadChrome();
  }

  // A long history comes as several events: all but the last say "complete": false (one event says nothing).
  function onHistory(ev) {
    const messages = Array.isArray(ev.messages) ? ev.messages : [];
    const last = ev.complete !== false;
    const req = ev.ref !== undefined ? state.requests.get(ev.ref) : undefined;
    if (req) {
      if (last) state.requests.delete(ev.ref);
      const c = getConv(req.key);
      const keep = req.kind === "older" && c === state.active ? { h: ui.messages.scrollHeight, top: ui.messages.scrollTop } : null;
      messages.forEach((m) => addMessage(m, { unread: false }));
      if (!last) {
        if (keep) ui.messages.scrollTop = ui.messages.scrollHeight - keep.h + keep.top;
        return;
      }
      if (req.kind !== "preview") {
        c.loading = false;
        c.loaded = true;
        c.more = ev.more === true;
      }
      renderConvList();
      if (c === state.active) {
        renderThreadChrome();
        if (keep) ui.messages.scrollTop = ui.messages.scrollHeight - keep.h + keep.top;
        else if (req.kind === "open") scrollToBottom();
      }
      return;
    }
    // The connect-time history: recent group messages and unreceived directs, or (with ?since=) all that was missed.
    const replay = ev.since !== undefined && ev.since !== null;
    const stick = nearBottom();
    messages.forEach((m) => {
      noteId(m.id);
      addMessage(m, { unread: replay || m.type === "direct", replay: replay });
    });
    if (!last) {
      state.resumable = true; // cut off before the last event: a reconnect asks for what follows (?since=)
      renderConvList();
      if (stick) scrollToBottom();
      return;
    }
    flushPending();
    const first = !state.everWelcomed;
    state.everWelcomed = true;
    if (first) {
      // Conversations this browser has had: fetch their newest message for the list.
      state.convs.forEach((c) => {
        if (c.key !== GROUP && !c.last && c !== state.active) requestHistory(c, "preview");
      });
    }
    const c = state.active;
    if (c && !c.loaded && !c.loading) requestHistory(c, "open");
    renderConvList();
    renderThreadChrome();
    if (stick || first) scrollToBottom();
  }

  // ---- events from the server ----------------------------------------------------------

  // fromUpload: the message came in an upload's HTTP answer, not over the socket, so it says nothing about which
  // messages the socket has delivered: the id is not noted for ?since= (or earlier ones could be skipped).
  function onLive(ev, fromUpload) {
    if (!fromUpload) noteId(ev.id);
    const stick = nearBottom();
    if (!addMessage(ev, { unread: true })) return;
    renderConvList();
    if (state.active && convKeyOf(ev) === state.active.key) {
      renderThreadChrome();
      if (stick || ev.user === state.me) scrollToBottom();
    }
  }

  function onAck(ev) {
    noteId(ev.id);
    const p = ev.ref !== undefined ? state.pending.get(ev.ref) : undefined;
    if (!p || typeof ev.id !== "number") return;
    confirm(p, ev.id, ev.ts);
    renderConvList();
  }

  function onError(ev) {
    const message = typeof ev.message === "string" ? ev.message : "the server refused that";
    if (ev.ref !== undefined) {
      const p = state.pending.get(ev.ref);
      if (p) {
        fail(p, message);
        return;
      }
      const req = state.requests.get(ev.ref);
      if (req) {
        state.requests.delete(ev.ref);
        const c = getConv(req.key);
        c.loading = false;
        c.loaded = true;
        c.more = false;
        if (c === state.active) renderThreadChrome();
      }
    }
    showNotice(message);
  }

  // One change ({"user","online"}) or several gathered by the server ({"changes":[...]}).
  function onPresence(ev) {
    const changes = Array.isArray(ev.changes) ? ev.changes : [ev];
    changes.forEach((change) => {
      const name = change && normalizeName(change.user);
      if (!name) return;
      if (change.online) state.online.add(name);
      else if (name !== state.me) state.online.delete(name);
    });
    renderOnline();
  }

  function onWelcome(ev) {
    state.welcomed = true;
    if (!ACCOUNT && typeof ev.resume === "string" && state.me) save(resumeKey(state.me), ev.resume);
    state.attempts = 0;
    state.online = new Set((Array.isArray(ev.online) ? ev.online : []).map(normalizeName).filter(Boolean));
    if (state.me) state.online.add(state.me);
    renderOnline();
    setConn("online");
  }

  function handle(ev) {
    if (!ev || typeof ev !== "object") return;
    switch (ev.type) {
      case "welcome":
        onWelcome(ev);
        break;
      case "history":
        onHistory(ev);
        break;
      case "message":
      case "direct":
        onLive(ev);
        break;
      case "ack":
        onAck(ev);
        break;
      case "error":
        onError(ev);
        break;
      case "presence":
        onPresence(ev);
        break;
      default:
        break;
    }
  }

  // ---- the connection ------------------------------------------------------------------

  function setConn(kind) {
    ui.conn.dataset.state = kind;
    clearInterval(state.countdown);
    state.countdown = 0;
    if (kind === "online") {
      ui.connText.textContent = "Connected";
      ui.banner.hidden = true;
    } else if (kind === "connecting") {
      ui.connText.textContent = "Connecting…";
      ui.banner.hidden = true;
    } else if (kind === "reconnecting") {
      const tick = () => {
        const left = Math.ceil((state.retryAt - Date.now()) / 1000);
        const when = state.ws ? "now" : left > 0 ? "in " + left + " s" : "now";
        ui.connText.textContent = "Reconnecting…";
        ui.bannerText.textContent = "Connection lost. Reconnecting " + when + "… Messages you write are sent once it is back.";
        ui.retryNow.hidden = Boolean(state.ws);
      };
      tick();
      ui.banner.hidden = false;
      state.countdown = setInterval(tick, 1000);
    }
    ui.app.classList.toggle("offline", kind !== "online");
  }

  function connect() {
    clearTimeout(state.retryTimer);
    state.retryTimer = 0;
    if (!state.me || state.ws) return;
    let url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/" + encodeURIComponent(state.me);
    const query = [];
    if (state.everWelcomed || state.resumable) query.push("since=" + state.lastId); // replay all that was missed
    const resume = ACCOUNT ? null : load(resumeKey(state.me), null);
    if (typeof resume === "string" && resume) query.push("resume=" + encodeURIComponent(resume));
    if (query.length) url += "?" + query.join("&");
    const ws = new WebSocket(url);
    state.ws = ws;
    state.welcomed = false;
    setConn(state.everWelcomed || state.attempts > 0 ? "reconnecting" : "connecting");
    ws.addEventListener("message", (e) => {
      if (state.ws !== ws || typeof e.data !== "string") return;
      let ev;
      try {
        ev = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      handle(ev);
    });
    ws.addEventListener("close", (e) => {
      if (state.ws !== ws) return;
      state.ws = null;
      const wasWelcomed = state.welcomed;
      if (e.code === CLOSE_CREDENTIALS_ENDED) {
        credentialsEnded(e.reason);
        return;
      }
      // Never welcomed on this page: maybe the handshake was refused (401/403); ask why rather than retry blindly.
      // (Later drops are network or server trouble; a revoked session or a registered name closes with 4001.)
      const firstTry = !state.everWelcomed;
      disconnected();
      // A guest also asks now and then while it keeps failing: after a long absence another guest may hold its name.
      const guestAsks = !ACCOUNT && navigator.onLine && state.attempts % 4 === 0;
      if (!wasWelcomed && (firstTry || guestAsks)) checkRefusal();
    });
  }

  function disconnected() {
    state.welcomed = false;
    state.pending.forEach((p) => {
      if (p.state === "sent") {
        p.state = "unconfirmed";
        setPendingStatus(p, "Waiting for connection…");
      }
    });
    state.requests.clear();
    state.convs.forEach((c) => {
      c.loading = false;
    });
    renderThreadChrome();
    if (!state.wantConnected) return;
    const base = BACKOFF_MS[Math.min(state.attempts, BACKOFF_MS.length - 1)];
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    state.attempts += 1;
    state.retryAt = Date.now() + delay;
    state.retryTimer = setTimeout(connect, delay);
    setConn("reconnecting");
  }

  function reconnectNow() {
    if (state.wantConnected && !state.ws) connect();
  }

  // ---- scrolling and notices -------------------------------------------------------------

  function nearBottom() {
    const s = ui.messages;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 120;
  }

  function scrollToBottom() {
    ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  function showNotice(text) {
    ui.noticeText.textContent = text;
    ui.notice.hidden = false;
    clearTimeout(state.noticeTimer);
    state.noticeTimer = setTimeout(() => {
      ui.notice.hidden = true;
    }, 8000);
  }

  // ---- joining and leaving ---------------------------------------------------------------

  function join(name) {
    state.me = name;
    if (!ACCOUNT) save(NAME_KEY, name);
    ui.joinScreen.hidden = true;
    ui.app.hidden = false;
    setAvatar(ui.meAvatar, name);
    ui.meName.textContent = name;
    getConv(GROUP);
    const known = load(convsKey(name), []);
    if (Array.isArray(known)) known.map(normalizeName).filter((n) => n && n !== name).forEach(getConv);
    const wanted = normalizeName(new URLSearchParams(location.search).get("with"));
    state.wantConnected = true;
    openConv(wanted && wanted !== name ? wanted : GROUP);
    renderOnline();
    connect();
  }

  function leave() {
    state.wantConnected = false;
    clearTimeout(state.retryTimer);
    const ws = state.ws;
    state.ws = null;
    if (ws) ws.close(1000, "switching user");
    save(NAME_KEY, null);
    state.me = null;
    state.welcomed = false;
    state.everWelcomed = false;
    state.resumable = false;
    state.attempts = 0;
    state.lastId = 0;
    state.convs.clear();
    state.pending.clear();
    state.requests.clear();
    state.online.clear();
    state.active = null;
    ui.conversations.replaceChildren();
    ui.online.replaceChildren();
    ui.thread.replaceChildren();
    setConn("connecting");
    ui.app.hidden = true;
    ui.joinScreen.hidden = false;
    history.replaceState(null, "", location.pathname);
    if (ui.joinName) {
      ui.joinName.value = "";
      ui.joinName.focus();
    }
  }

  // ---- accounts ----------------------------------------------------------------------------

  // {name, valid, registered, held, signed_in, guests} from the server, or null when it cannot say.
  // With this page's resume token, "held" means held by another guest.
  function nameStatus(name) {
    const resume = ACCOUNT ? null : load(resumeKey(name), null);
    const query = typeof resume === "string" && resume ? "?resume=" + encodeURIComponent(resume) : "";
    return fetch("/api/names/" + encodeURIComponent(name) + query, { credentials: "same-origin", cache: "no-store" })
      .then((r) => (r.ok ? r.json() : null))
      .catch(() => null);
  }

  function showJoinError(text) {
    ui.joinError.textContent = text;
    ui.joinError.hidden = false;
    if (ui.joinName) ui.joinName.focus();
  }

  function registeredText(name) {
    return "“" + name + "” is a registered name. Sign in to use it, or pick another name.";
  }

  function heldText(name) {
    return "“" + name + "” is in use by another guest. Pick another name.";
  }

  // The server ended this page's right to its name (close code 4001).
  function credentialsEnded(reason) {
    state.wantConnected = false;
    if (ACCOUNT) {
      location.assign("/"); // signed out (here or in another tab): the page comes back signed out
      return;
    }
    const name = state.me;
    leave();
    showJoinError(reason === "name registered by another user" ? registeredText(name) : "You were disconnected: " + (reason || "the name can no longer be used") + ".");
  }

  // The socket closed before its welcome: if the handshake was refused because of the name, say so instead of retrying.
  function checkRefusal() {
    const name = state.me;
    if (!name) return;
    nameStatus(name).then((status) => {
      if (!status || state.me !== name || state.welcomed) return;
      if (ACCOUNT) {
        if (!status.signed_in) location.assign("/"); // the session ended (signed out elsewhere, expired, removed)
      } else if (status.registered) {
        leave();
        showJoinError(registeredText(name));
      } else if (status.held) {
        save(resumeKey(name), null); // the token this page had (if any) no longer opens the name
        leave();
        showJoinError(heldText(name));
      } else if (!status.guests) {
        location.assign("/");
      }
    });
  }

  // ---- files ------------------------------------------------------------------------------

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
    const c = state.active;
    if (!c) return;
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
    const cancel = el("button", "link-btn", "Cancel");
    cancel.type = "button";
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
          const ev = { type: r.to ? "direct" : "message", id: r.id, user: state.me, msg: r.msg, ts: r.ts, attachment: r.attachment };
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
          cancel.onclick = () => { clearTimeout(retryTimer); removeUpload(item); };
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
      const c = state.active;
      ui.dropText.textContent = !ACCOUNT
        ? "Sign in to share files"
        : "Drop to share with " + (!c || c.key === GROUP ? "everyone" : c.key);
    }
    ui.dropOverlay.hidden = !show;
  }

  if (UPLOADS && ui.uploadForm) {
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

  // ---- wiring ----------------------------------------------------------------------------

  function resizeInput() {
    ui.input.style.height = "auto";
    ui.input.style.height = Math.min(ui.input.scrollHeight, 160) + "px";
  }

  function submitComposer() {
    const text = ui.input.value.replace(/^(?:[ \t]*\n)+/, "").replace(/(?:\n[ \t]*)+$/, "");
    if (text.trim() && state.active && sendText(text)) {
      ui.input.value = "";
      resizeInput();
    }
    ui.input.focus();
  }

  ui.joinForm.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!ui.joinName) return; // no guests here: the page offers only sign-in and registration
    const name = normalizeName(ui.joinName.value);
    if (!name) {
      ui.joinError.textContent = "Use 1–" + MAX_NAME + " characters: letters a–z, digits, “_”, “.” and “-”, starting with a letter or digit.";
      ui.joinError.hidden = false;
      ui.joinName.focus();
      return;
    }
    ui.joinError.hidden = true;
    // A registered name would be refused at the handshake: say so here. If the server cannot tell, try anyway.
    nameStatus(name).then((status) => {
      if (state.me) return; // joined meanwhile (another submit)
      if (status && status.registered && !status.signed_in) showJoinError(registeredText(name));
      else if (status && status.held) showJoinError(heldText(name));
      else join(name);
    });
  });

  ui.composer.addEventListener("submit", (e) => {
    e.preventDefault();
    submitComposer();
  });

  ui.input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      submitComposer();
    }
  });
  ui.input.addEventListener("input", resizeInput);
  ui.send.addEventListener("mousedown", (e) => e.preventDefault()); // keep the focus in the input

  ui.loadOlder.addEventListener("click", () => {
    if (state.active && !state.active.loading) requestHistory(state.active, "older");
  });
  ui.back.addEventListener("click", () => ui.app.classList.add("show-list"));
  if (ui.switchUser) ui.switchUser.addEventListener("click", leave);
  ui.retryNow.addEventListener("click", reconnectNow);
  ui.noticeClose.addEventListener("click", () => {
    ui.notice.hidden = true;
  });
  window.addEventListener("online", reconnectNow);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState !== "visible") return;
    if (state.active && state.active.unread) {
      state.active.unread = 0; // read now that the tab is in front
      renderConvList();
    }
    reconnectNow();
  });

  const remembered = GUESTS ? normalizeName(load(NAME_KEY, null)) : null;
  if (ACCOUNT) {
    join(ACCOUNT);
  } else if (remembered) {
    join(remembered);
  } else {
    ui.joinScreen.hidden = false;
    if (ui.joinName) ui.joinName.focus();
  }
})();
