// Start Swagger UI on /api/docs. A file, not an inline script, so that the page runs under the
// same Content-Security-Policy as the rest of the app. The schema URL comes from the page.
window.addEventListener('load', function () {
  var root = document.getElementById('swagger-ui');
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: '#swagger-ui',
    layout: 'BaseLayout',
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null,  // no badge fetched from swagger.io
    presets: [SwaggerUIBundle.presets.apis],
  });
});
