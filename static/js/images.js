// Images page: refresh the rows while jobs run; drag-and-drop uploads straight to S3 with per-file progress.
(function () {
  const listing = document.getElementById("listing");

  const FINAL = ["done", "failed", "gone"];
  const awaited = new Map();  // id of an upload whose job has not finished -> its status label

  function busy() {
    return listing.querySelector('[data-status="running"], [data-status="queued"], [data-status="pages"]') !== null;
  }

  async function refresh() {
    const response = await fetch(listing.dataset.refresh, {headers: {"Accept": "text/html"}});
    if (!response.ok) return;
    listing.innerHTML = await response.text();
    listing.querySelectorAll("tr[data-id]").forEach(function (row) {
      const label = awaited.get(row.dataset.id);
      if (label && FINAL.includes(row.dataset.status)) {
        label.textContent = row.dataset.status === "done" ? "converted" : row.dataset.status + ": see the list";
        label.className = row.dataset.status === "done" ? "ok small" : "error small";
        awaited.delete(row.dataset.id);
      }
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
        body: JSON.stringify({filename: file.name, content_type: file.type, size: file.size})});
      if (!answer.ok) throw new Error((await answer.json()).error || answer.statusText);
      const form = await answer.json();
      // The signed fields, Content-Type among them (the file's type, as the form was signed for), then the file:
      // S3 reads no field after it.
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
        request.onload = function () {
          const refusal = /<Message>([^<]*)<\/Message>/.exec(request.responseText || "");  // S3's reason
          if (request.status < 300) resolve();
          else reject(new Error("S3 said " + request.status + (refusal ? ": " + refusal[1] : "")));
        };
        request.onerror = function () { reject(new Error("network error")); };
        request.send(body);
      });
      view.bar.value = 100;
      view.state.textContent = "uploaded: converting";
      awaited.set(form.id, view.state);
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
