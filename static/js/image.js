// Image page: OpenSeadragon on the Deep Zoom or the IIIF source; copy buttons; refresh while converting.
(function () {
  document.querySelectorAll("button.copy").forEach(function (button) {
    button.addEventListener("click", async function () {
      await navigator.clipboard.writeText(button.dataset.copy);
      const label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1200);
    });
  });

  const badge = document.querySelector("h1 .badge");
  if (badge && ["running", "queued", "pages"].includes(badge.textContent.trim())) {
    setTimeout(function () { location.reload(); }, 3000);
  }

  const element = document.getElementById("viewer");
  if (!element) return;
  const viewer = OpenSeadragon({id: "viewer", prefixUrl: element.dataset.prefix, crossOriginPolicy: "Anonymous",
                                showNavigator: true, tileSources: element.dataset.dzi});
  window.tilerViewer = viewer;  // the browser tests watch its tile events
  document.querySelectorAll(".switch button").forEach(function (button) {
    button.addEventListener("click", function () {
      document.querySelectorAll(".switch button").forEach(function (other) { other.classList.toggle("on", other === button); });
      viewer.open(element.dataset[button.dataset.source]);
    });
  });
})();
