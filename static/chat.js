// Minimal chat client: joins /ws/NAME and shows events; user text is inserted as text only.
(function () {
  const log = document.getElementById("log");
  function show(line) { const li = document.createElement("li"); li.textContent = line; log.appendChild(li); }
  document.getElementById("join").addEventListener("submit", function (e) {
    e.preventDefault();
    const name = document.getElementById("name").value.trim();
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(scheme + location.host + "/ws/" + encodeURIComponent(name));
    ws.onmessage = function (m) {
      const ev = JSON.parse(m.data);
      if (ev.type === "message") show(ev.user + ": " + ev.msg);
      else if (ev.type === "direct") show(ev.user + " → " + ev.to + ": " + ev.msg);
      else if (ev.type === "history") ev.messages.forEach(function (x) { show(x.user + ": " + x.msg); });
      else if (ev.type === "error") show("error: " + ev.message);
      else if (ev.type === "presence") show(ev.user + (ev.online ? " joined" : " left"));
    };
    document.getElementById("join").hidden = true;
    document.getElementById("send").hidden = false;
    document.getElementById("send").addEventListener("submit", function (e2) {
      e2.preventDefault();
      const input = document.getElementById("text");
      if (input.value.trim()) { ws.send(input.value); show("me: " + input.value); }
      input.value = "";
    });
  });
})();
