// The review list's bulk selection (a file: the Content-Security-Policy allows no inline script).
//
// Ticking the header box selects the page, and offers "Select all N matching": every item the
// list's filter matches, beyond this page. The bulk actions (Approve / Reject / Requeue selected)
// then lead to the confirmation form with `all=1` and the filter instead of the ticked ids. The
// list's query string travels along either way, so the confirmation page and the list after it
// keep the filter. Nothing here changes data: the confirmation form's POST does.
(function () {
  'use strict';
  var banner = document.getElementById('select-matching');
  var headerBox = document.getElementById('select-all');
  if (!banner || !headerBox) { return; }
  var allMatching = false;

  function boxes() { return Array.prototype.slice.call(document.querySelectorAll('input.select-box')); }
  function show(id, on) { var el = document.getElementById(id); if (el) { el.classList.toggle('d-none', !on); } }

  function refresh() {
    var every = boxes().length > 0 && boxes().every(function (b) { return b.checked; });
    if (!every) { allMatching = false; }
    banner.classList.toggle('d-none', !every);
    show('select-matching-page', every && !allMatching);
    show('select-all-matching', every && !allMatching);
    show('select-matching-all', allMatching);
  }

  // After sqladmin's own handler has (un)ticked the rows.
  headerBox.addEventListener('click', function () { setTimeout(refresh, 0); });
  document.addEventListener('change', function (e) {
    if (e.target.classList && e.target.classList.contains('select-box')) { refresh(); }
  });
  var selectAll = document.getElementById('select-all-matching');
  if (selectAll) {
    selectAll.addEventListener('click', function (e) { e.preventDefault(); allMatching = true; refresh(); });
  }
  document.getElementById('select-matching-clear').addEventListener('click', function (e) {
    e.preventDefault();
    allMatching = false;
    headerBox.checked = false;
    boxes().forEach(function (b) { b.checked = false; });
    refresh();
  });

  // The bulk actions: taken over before sqladmin's handler (capture phase on the document), so that
  // they carry the filter and, when asked, "all matching".
  document.addEventListener('click', function (e) {
    var link = e.target.closest ? e.target.closest("[id^='action-custom-']") : null;
    if (!link) { return; }
    e.preventDefault();
    e.stopPropagation();
    var params = new URLSearchParams(window.location.search);
    ['page', 'pageSize', 'sortBy', 'sort'].forEach(function (k) { params.delete(k); });
    if (allMatching) {
      params.set('all', '1');
    } else {
      var pks = boxes().filter(function (b) { return b.checked; })
        .map(function (b) { return b.previousElementSibling.value; });
      params.set('pks', pks.join(','));
    }
    window.location.href = link.getAttribute('data-url') + '?' + params.toString();
  }, true);
}());
