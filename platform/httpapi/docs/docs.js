// Renders /openapi.json with the Swagger UI served beside this file. Nothing
// is loaded from elsewhere: validatorUrl null keeps Swagger UI from asking an
// online validator about the document.
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    docExpansion: "list",
    validatorUrl: null,
  });
};
