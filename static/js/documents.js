// Documents page: drag-and-drop upload, delete confirmation, live ingestion progress.
const form = document.getElementById("upload-form");
const input = document.getElementById("upload-files");

form.addEventListener("dragover", (event) => { event.preventDefault(); form.classList.add("dragging"); });
form.addEventListener("dragleave", () => form.classList.remove("dragging"));
form.addEventListener("drop", (event) => {
  event.preventDefault();
  form.classList.remove("dragging");
  input.files = event.dataTransfer.files;
  form.requestSubmit();
});

// Choosing the document to version ticks its current readers: a restricted policy's next
// version stays restricted unless the admin unticks on purpose (rag/views.py does the same for
// a row's "new version" link, server-side).
const versionOf = document.getElementById("version-of");
versionOf.addEventListener("change", () => {
  const option = versionOf.selectedOptions[0];
  if (!option || !option.value) return;
  const readers = new Set((option.dataset.readers || "").split(",").filter(Boolean));
  for (const box of form.querySelectorAll('input[name="groups"]')) box.checked = readers.has(box.value);
});

for (const deleteForm of document.querySelectorAll("form[data-confirm]")) {
  deleteForm.addEventListener("submit", (event) => {
    if (!window.confirm(deleteForm.dataset.confirm)) event.preventDefault();
  });
}

function applyProgress(update) {
  const row = document.querySelector(`tr[data-document-id="${update.document_id}"]`);
  if (!row) { window.location.reload(); return; } // a document this page has not listed yet
  row.dataset.status = update.status;
  const badge = row.querySelector(".status");
  badge.className = `status status-${update.status}`;
  const table = document.getElementById("documents");
  badge.textContent = table.dataset[`label${update.status.charAt(0).toUpperCase()}${update.status.slice(1)}`] || update.status;
  const bar = row.querySelector("progress");
  bar.hidden = !["queued", "processing"].includes(update.status);
  bar.max = Math.max(update.total, 1);
  bar.value = update.done;
  const working = ["queued", "processing"].includes(update.status);
  row.querySelector(".eta").textContent = !working
    ? ""
    : update.eta_seconds
      ? `${update.stage} ${update.done}/${update.total}, ~${Math.ceil(update.eta_seconds)} s`
      : update.stage;
  let reason = row.querySelector(".failure-reason");
  if (update.failure_reason) {
    if (!reason) {
      reason = document.createElement("p");
      reason.className = "error failure-reason";
      row.querySelector(".status-cell").append(reason);
    }
    reason.textContent = update.failure_reason; // textContent: the reason is never parsed as HTML
  }
  if (update.status === "ready") {
    const chunks = row.querySelector(".chunk-count");
    if (chunks) chunks.textContent = String(update.total); // updated in place: no reload steals focus
  }
}

function connect(delay = 1000) {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${window.location.host}/ws/documents/`);
  socket.addEventListener("message", (event) => applyProgress(JSON.parse(event.data)));
  socket.addEventListener("close", (event) => {
    // 4401: signed out, or an OIDC sign-in due for its re-check: a page load does it.
    if (event.code === 4401) { location.reload(); return; }
    setTimeout(() => connect(Math.min(delay * 2, 15000)), delay);
  });
}
connect();
