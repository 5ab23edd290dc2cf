// Mirador on the manifest (or collection) named in data-manifest.
(function () {
  const element = document.getElementById("mirador");
  window.tilerMirador = Mirador.viewer({
    id: "mirador",
    windows: [{manifestId: element.dataset.manifest}],
    window: {allowClose: false},
    thumbnailNavigation: {defaultPosition: "far-bottom"},  // a collection's items are pages: show the strip
    workspaceControlPanel: {enabled: false},
  });
})();
