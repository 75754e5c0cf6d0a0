// The field-by-field edit page: live character counts beside each field, and Ctrl+Enter (Cmd+Enter)
// to save. A file, not inline code: the Content-Security-Policy allows scripts from this origin only.
// Without it the page still works: the server writes each count as it was when the page was made.
document.addEventListener('DOMContentLoaded', function () {
  document.querySelectorAll('[data-count]').forEach(function (field) {
    var counter = document.getElementById(field.getAttribute('data-count'));
    if (!counter) { return; }
    var max = parseInt(field.getAttribute('data-max') || '0', 10);
    var update = function () {
      var n = field.value.length;
      counter.textContent = max ? n + ' / ' + max : String(n);
      counter.classList.toggle('over', max > 0 && n > max);
      counter.classList.toggle('near', max > 0 && n <= max && n > 0.9 * max);
    };
    field.addEventListener('input', update);
    update();
  });
  var form = document.getElementById('edit-form');
  if (form) {
    form.addEventListener('keydown', function (e) {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        form.requestSubmit ? form.requestSubmit() : form.submit();
      }
    });
  }
});
