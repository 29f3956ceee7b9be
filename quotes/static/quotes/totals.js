// The quote page's totals panel, recomputed as the rep types: the change form's data is posted
// (CSRF token included) to the quote's totals/ endpoint, which saves nothing and answers the
// panel's HTML. Debounced; an answer that arrives after a newer request is dropped.
(function () {
  "use strict";
  const panel = document.getElementById("quote-totals");
  const form = document.getElementById("quote_form");
  if (!panel || !form) return;
  let timer = null;
  let latest = 0;

  function refresh() {
    const sent = ++latest;
    const token = form.querySelector("input[name=csrfmiddlewaretoken]");
    panel.setAttribute("aria-busy", "true");
    fetch(panel.dataset.url, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { "X-CSRFToken": token ? token.value : "" },
    })
      .then((answer) => (answer.ok ? answer.text() : Promise.reject(answer.status)))
      .then((html) => {
        if (sent !== latest) return;
        panel.innerHTML = html;
        panel.dataset.refreshed = String(sent);
      })
      .catch(() => {})
      .finally(() => {
        if (sent === latest) panel.removeAttribute("aria-busy");
      });
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 350);
  }

  form.addEventListener("input", later);
  form.addEventListener("change", later);
})();
