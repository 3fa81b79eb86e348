// Starts Swagger UI on /docs. A file, not an inline script, so the page's Content-Security-Policy
// can forbid inline scripts. The spec URL is relative, so it also works under a path prefix.
window.addEventListener('load', () => {
  const root = document.getElementById('swagger-ui');
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: '#swagger-ui',
    deepLinking: true,
    showExtensions: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
  });
});
