// The chat page: one WebSocket, answers stream in as text and are replaced by the
// server's sanitised HTML when done. No inline scripts (CSP); strings come from #i18n.

const t = (key) => document.getElementById("i18n").dataset[key] || key;
const errorText = (code, fallback) =>
  document.getElementById("i18n").dataset[`error-${code}`.replace(/-([a-z_])/g, (_, c) => c.toUpperCase())] ||
  fallback;

const form = document.getElementById("ask-form");
const textarea = document.getElementById("question");
const sendButton = document.getElementById("send");
const stopButton = document.getElementById("stop");
const messages = document.getElementById("messages");
const connection = document.getElementById("connection");

let socket = null;
let conversationId = form.dataset.conversationId || null;
let current = null; // the assistant bubble being written
let lastQuestion = "";
let retryDelay = 500;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function setBusy(busy) {
  sendButton.disabled = busy;
  stopButton.hidden = !busy;
  form.classList.toggle("busy", busy);
}

function showConnection(text) {
  connection.hidden = !text;
  connection.textContent = text || "";
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/chat/`);
  socket.addEventListener("open", () => {
    retryDelay = 500;
    showConnection("");
    sendButton.disabled = !!current;
  });
  socket.addEventListener("message", (event) => handle(JSON.parse(event.data)));
  socket.addEventListener("close", (event) => {
    if (event.code === 4401) {
      location.href = "/accounts/login/?next=" + encodeURIComponent(location.pathname + location.search);
      return;
    }
    if (current) {
      finishWithError(current, t("offline"));
    }
    // 1011: the server failed (its message broker is down, say), not the network: say so.
    showConnection(t(event.code === 1011 ? "serviceDown" : "reconnecting"));
    sendButton.disabled = true;
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 10000);
  });
}

function addUserMessage(text) {
  const item = el("li", "msg user");
  item.append(el("div", "bubble", text));
  messages.append(item);
}

function addAssistantMessage() {
  const item = el("li", "msg assistant streaming");
  const bubble = el("div", "bubble");
  const banners = el("div", "banners");
  const answer = el("div", "answer");
  const text = el("p", "answer-text");
  answer.append(text);
  bubble.append(banners, answer);
  item.append(bubble);
  messages.append(item);
  item.scrollIntoView({ block: "end" });
  return item;
}

function banner(item, kind, text) {
  const banners = item.querySelector(".banners");
  if ([...banners.children].some((b) => b.textContent === text)) return;
  banners.append(el("p", `banner ${kind}`, text));
}

function ask(question) {
  if (!socket || socket.readyState !== WebSocket.OPEN || current) return;
  lastQuestion = question;
  addUserMessage(question);
  current = addAssistantMessage();
  setBusy(true);
  socket.send(JSON.stringify({ type: "ask", question, conversation_id: conversationId }));
}

function handle(message) {
  const item = current;
  switch (message.type) {
    case "started":
      if (item) item.dataset.messageId = message.message_id;
      if (conversationId !== message.conversation_id) {
        conversationId = message.conversation_id;
        history.replaceState(null, "", `?c=${conversationId}`);
        addToSidebar(conversationId, lastQuestion);
      }
      break;
    case "token":
      if (item) {
        item.querySelector(".answer-text").textContent += message.text;
      }
      break;
    case "handover":
      if (item) banner(item, "info", t("handover"));
      break;
    case "citations":
      if (item) renderCitations(item, message.items);
      break;
    case "done":
      if (item) finish(item, message);
      break;
    case "error":
      if (item) {
        finishWithError(item, errorText(message.code, message.message));
      } else {
        showConnection(errorText(message.code, message.message));
      }
      break;
    case "feedback_saved": {
      const answered = messages.querySelector(`[data-message-id="${message.message_id}"] .msg-actions`);
      if (answered && !answered.querySelector(".thanks")) answered.append(el("span", "thanks muted", t("thanks")));
      break;
    }
  }
}

function addToSidebar(id, question) {
  // Shown as typed in this browser; the stored title is the redacted question.
  const list = document.getElementById("conversation-list");
  list.querySelectorAll("li.muted").forEach((li) => li.remove());
  list.querySelectorAll("li.current").forEach((li) => li.classList.remove("current"));
  const li = el("li", "current");
  const link = el("a", "", question.length > 60 ? question.slice(0, 60) + "…" : question);
  link.href = `?c=${id}`;
  li.append(link);
  list.prepend(li);
}

function renderCitations(item, items) {
  if (!items.length) return;
  const list = el("ul", "citations");
  list.setAttribute("aria-label", t("sources"));
  for (const c of items) {
    const li = el("li");
    // The version and its dates ("v3, in effect since 2026-07-01") when the server sent them.
    const version = c.version_label ? ` · ${c.version_label}` : "";
    const label = `[${c.n}] ${c.title}${c.heading ? " — " + c.heading : ""}${c.page ? " (p. " + c.page + ")" : ""}${version}`;
    const link = el("a", c.cited ? "chip cited" : "chip consulted", label);
    link.href = c.url;
    if (!c.cited) link.title = t("consulted");
    li.append(link);
    list.append(li);
  }
  item.querySelector(".bubble").append(list);
}

function finish(item, done) {
  // The server rendered and sanitised this HTML (Markdown → nh3); the streamed text was plain.
  item.querySelector(".answer").innerHTML = done.html;
  if (done.fallback) banner(item, "warn", t("fallback"));
  if (done.handover) banner(item, "info", t("handover"));
  if (done.declined) item.querySelector(".answer").classList.add("declined");
  if (!done.verified && !done.fallback) {
    // Say why: the claim check's findings (a number or address the policy text does not hold).
    const why = (done.checks || []).join("; ");
    banner(item, "warn", why ? `${t("unverified")} (${why})` : t("unverified"));
  }
  item.querySelector(".bubble").append(actions());
  settle(item);
}

function finishWithError(item, text) {
  banner(item, "error", text);
  const retry = el("button", "retry", t("retry"));
  retry.type = "button";
  const question = lastQuestion;
  retry.addEventListener("click", () => {
    retry.remove();
    textarea.value = question;
    form.requestSubmit();
  });
  item.querySelector(".bubble").append(retry);
  settle(item);
}

function settle(item) {
  item.classList.remove("streaming");
  if (item === current) current = null;
  setBusy(false);
  sendButton.disabled = !socket || socket.readyState !== WebSocket.OPEN;
  textarea.focus();
}

function actions() {
  const box = el("div", "msg-actions");
  const copy = el("button", "copy", t("copy"));
  copy.type = "button";
  const up = el("button", "vote", t("helpful"));
  up.type = "button";
  up.dataset.value = "1";
  const down = el("button", "vote", t("notHelpful"));
  down.type = "button";
  down.dataset.value = "-1";
  box.append(copy, up, down);
  return box;
}

function sendFeedback(item, value, comment) {
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  socket.send(
    JSON.stringify({ type: "feedback", message_id: item.dataset.messageId, value, comment: comment || "" })
  );
}

messages.addEventListener("click", async (event) => {
  const button = event.target.closest("button");
  if (!button) return;
  const item = button.closest(".msg.assistant");
  if (!item) return;
  if (button.classList.contains("copy")) {
    await navigator.clipboard.writeText(item.querySelector(".answer").innerText);
    button.textContent = t("copied");
    setTimeout(() => (button.textContent = t("copy")), 1500);
  } else if (button.classList.contains("vote")) {
    const value = Number(button.dataset.value);
    item.querySelectorAll(".vote").forEach((b) => b.classList.toggle("chosen", b === button));
    sendFeedback(item, value, "");
    if (value === -1 && !item.querySelector(".feedback-comment")) {
      const box = el("form", "feedback-comment");
      const input = el("input");
      input.placeholder = t("comment");
      input.setAttribute("aria-label", t("comment"));
      input.maxLength = 1000;
      const submit = el("button", "", t("sendComment"));
      submit.type = "submit";
      box.append(input, submit);
      box.addEventListener("submit", (e) => {
        e.preventDefault();
        sendFeedback(item, -1, input.value);
        box.remove();
      });
      item.querySelector(".bubble").append(box);
      input.focus();
    }
  }
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const question = textarea.value.trim();
  if (!question) return;
  textarea.value = "";
  ask(question);
});

textarea.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

stopButton.addEventListener("click", () => {
  if (!current) return;
  socket.send(JSON.stringify({ type: "stop" }));
  banner(current, "info", t("stopped"));
  settle(current);
});

document.querySelectorAll("form[data-confirm]").forEach((f) =>
  f.addEventListener("submit", (event) => {
    if (!confirm(f.dataset.confirm)) event.preventDefault();
  })
);

showConnection(t("connecting"));
sendButton.disabled = true;
connect();
