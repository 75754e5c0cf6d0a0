// Keyboard review on the item page (a file: the Content-Security-Policy allows no inline script).
//
// A key presses the button, or follows the link, whose data-key attribute is that key:
//   a approve · r reject · e edit · j next · k previous · u undo the last decision.
// Buttons submit their POST form (with the CSRF token); the answer is a 303 to the next item, so
// a decision is one keypress and one page load. Keys do nothing while the reviewer types in a field,
// with a modifier held (Ctrl+R still reloads), on auto-repeat, or once a key has started a page load
// (a second press cannot decide on the next item before it has been seen).
(function () {
  'use strict';
  var busy = false;

  function typing(el) {
    if (!el) { return false; }
    var tag = (el.tagName || '').toLowerCase();
    return tag === 'input' || tag === 'textarea' || tag === 'select' || el.isContentEditable;
  }

  document.addEventListener('keydown', function (e) {
    if (busy || e.repeat || e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) { return; }
    var key = e.key && e.key.length === 1 ? e.key.toLowerCase() : null;
    if (!key || !/^[a-z]$/.test(key)) { return; }
    var target = document.querySelector('[data-key="' + key + '"]');
    if (!target || target.disabled) { return; }
    e.preventDefault();
    busy = true;
    document.body.classList.add('review-busy');
    target.click();
  });

  // Coming back with the browser's Back button shows this page from its cache: accept keys again.
  window.addEventListener('pageshow', function () {
    busy = false;
    document.body.classList.remove('review-busy');
  });
}());
