// The tracking page's live updates (served at /track/assets/page.js; the page's CSP allows no
// inline script). <main> carries the view version it shows (data-version) and the event stream
// URL (data-events); each `view` event replaces <main>'s content with the new rendering.
(function () {
  var main = document.getElementById('main');
  var note = document.getElementById('live-note');
  if (!main || !note || !window.EventSource) {
    return;
  }
  var url = main.getAttribute('data-events');
  if (!url) {
    return;
  }
  var version = main.getAttribute('data-version');
  var source = new EventSource(url + '&after=' + encodeURIComponent(version));
  source.addEventListener('view', function (e) {
    main.innerHTML = e.data;
    main.setAttribute('data-version', e.lastEventId);
    note.textContent = 'Updated ' + new Date().toLocaleTimeString();
  });
  source.onopen = function () {
    note.textContent = 'This page updates itself while open.';
  };
})();
