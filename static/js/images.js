// Images page: refresh the rows while jobs run; drag-and-drop uploads straight to S3 with per-file progress.
(function () {
  const table = document.querySelector("table.images");
  const rows = document.getElementById("rows");

  const FINAL = ["done", "failed", "gone"];
  const awaited = new Set();  // ids of uploads whose jobs have not finished yet

  function busy() { return rows.querySelector('[data-status="running"], [data-status="queued"]') !== null; }

  async function refresh() {
    const response = await fetch(table.dataset.refresh, {headers: {"Accept": "text/html"}});
    if (!response.ok) return;
    rows.innerHTML = await response.text();
    rows.querySelectorAll("tr[data-id]").forEach(function (row) {
      if (FINAL.includes(row.dataset.status)) awaited.delete(row.dataset.id);
    });
  }

  let uploading = 0;
  setInterval(function () { if (busy() || uploading > 0 || awaited.size > 0) refresh(); }, 2500);

  const drop = document.getElementById("upload");
  if (!drop) return;
  const list = document.getElementById("upload-list");

  function line(file) {
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = file.name;
    const bar = document.createElement("progress");
    bar.max = 100; bar.value = 0;
    const state = document.createElement("span");
    state.className = "muted small";
    state.textContent = "waiting";
    item.append(name, bar, state);
    list.append(item);
    return {bar, state};
  }

  async function upload(file) {
    const view = line(file);
    uploading += 1;
    try {
      const answer = await fetch(window.TILER.uploadUrl, {
        method: "POST", headers: {"Content-Type": "application/json", "X-CSRF-Token": window.TILER.csrf},
        body: JSON.stringify({filename: file.name})});
      if (!answer.ok) throw new Error((await answer.json()).error || answer.statusText);
      const form = await answer.json();
      const body = new FormData();
      Object.entries(form.fields).forEach(([key, value]) => body.append(key, value));
      body.append("file", file);
      await new Promise(function (resolve, reject) {
        const request = new XMLHttpRequest();
        request.open("POST", form.url);
        request.upload.onprogress = function (event) {
          if (event.lengthComputable) view.bar.value = 100 * event.loaded / event.total;
          view.state.textContent = "uploading";
        };
        request.onload = function () { request.status < 300 ? resolve() : reject(new Error("S3 said " + request.status)); };
        request.onerror = function () { reject(new Error("network error")); };
        request.send(body);
      });
      view.bar.value = 100;
      view.state.textContent = "uploaded: converting";
      awaited.add(form.id);
    } catch (error) {
      view.state.textContent = "failed: " + error.message;
      view.state.className = "error small";
    } finally {
      uploading -= 1;
      refresh();
    }
  }

  function take(files) { Array.from(files).forEach(upload); }
  document.getElementById("files").addEventListener("change", function (event) { take(event.target.files); });
  ["dragenter", "dragover"].forEach(function (name) {
    drop.addEventListener(name, function (event) { event.preventDefault(); drop.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (name) {
    drop.addEventListener(name, function (event) { event.preventDefault(); drop.classList.remove("over"); });
  });
  drop.addEventListener("drop", function (event) { take(event.dataTransfer.files); });
})();
