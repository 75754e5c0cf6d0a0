// Show sqladmin's flash messages as toasts (was an inline script in sqladmin/flash.html; the
// Content-Security-Policy allows scripts from this origin's files only).
document.addEventListener('DOMContentLoaded', function () {
  document.querySelectorAll('.toast').forEach(function (toastEl) {
    new window.tabler.bootstrap.Toast(toastEl, { delay: 3000 }).show();
  });
});
