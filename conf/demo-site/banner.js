// The demo's consent banner: plain JavaScript, no framework.
//
// The edge is the source of truth. GET /consent says what is decided for
// this visitor (and whether to ask: "reprompt"); POST /consent records new
// choices. For an anonymous visitor the answer sets a sealed, HttpOnly
// choice cookie that this script never reads; for a visitor the edge
// recognises (a mail link, or the visitor-ID cookie) the choices go to the
// customer's consent record. docs/choices.md explains each step.
(function () {
  "use strict";

  // Needed to serve the customer at all: shown, never asked.
  var NECESSARY = { service: true, billing: true };

  var LABELS = {
    service: "Providing the service",
    billing: "Billing",
    analysis: "Analysis of how the site is used",
    marketing: "Marketing",
    campaigns: "Campaigns by mail",
    research: "Research",
    group_sharing: "Sharing within the group",
    third_parties: "Provision to named third parties"
  };

  var banner = document.getElementById("consent-banner");
  var fieldset = document.getElementById("consent-purposes");
  var status = document.getElementById("consent-status");

  function getChoices() {
    return fetch("/consent", { credentials: "same-origin", cache: "no-store" }).then(function (r) {
      if (!r.ok) throw new Error("GET /consent: " + r.status);
      return r.json();
    });
  }

  // JSON body, same origin: the browser sends Origin and Sec-Fetch-Site,
  // which the endpoint checks; a cross-site page cannot post here.
  function postChoices(choices) {
    return fetch("/consent", {
      method: "POST",
      credentials: "same-origin",
      cache: "no-store",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(choices)
    }).then(function (r) {
      return r.json().then(function (doc) {
        if (!r.ok) throw new Error(doc.error || ("POST /consent: " + r.status));
        return doc;
      });
    });
  }

  function render(doc, saved) {
    fieldset.textContent = "";
    Object.keys(doc.purposes).forEach(function (name) {
      var label = document.createElement("label");
      var box = document.createElement("input");
      box.type = "checkbox";
      box.id = "consent-" + name;
      box.name = name;
      box.checked = doc.purposes[name];
      box.disabled = !!NECESSARY[name];
      label.appendChild(box);
      label.appendChild(document.createTextNode(" " + (LABELS[name] || name)));
      fieldset.appendChild(label);
    });
    if (saved) {
      status.textContent = doc.identified
        ? "Saved to your customer account."
        : "Saved in this browser only.";
    }
    // The stand-in for an analytics script: it runs, and sets its cookie,
    // only once analysis is allowed. Withdrawing consent later does not
    // delete the cookie in the browser; the edge strips it from then on.
    if (doc.purposes.analysis) {
      document.cookie = "_ga=GA1.2.3; path=/; max-age=31536000; SameSite=Lax";
    }
  }

  function collect(all) {
    var choices = {};
    Array.prototype.forEach.call(fieldset.querySelectorAll("input[type=checkbox]"), function (box) {
      if (!NECESSARY[box.name]) choices[box.name] = all === undefined ? box.checked : all;
    });
    return choices;
  }

  function save(choices) {
    status.textContent = "Saving…";
    postChoices(choices).then(function (doc) {
      render(doc, true);
      banner.hidden = true;
      showEcho();
    }, function (err) {
      status.textContent = "Could not save: " + err.message;
    });
  }

  function showEcho() {
    fetch("/echo", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.text(); })
      .then(function (text) { document.getElementById("echo").textContent = text; });
  }

  document.getElementById("consent-form").addEventListener("submit", function (e) {
    e.preventDefault();
    save(collect());
  });
  document.getElementById("consent-accept-all").addEventListener("click", function () { save(collect(true)); });
  document.getElementById("consent-reject-all").addEventListener("click", function () { save(collect(false)); });
  document.getElementById("consent-open").addEventListener("click", function () { banner.hidden = false; });

  getChoices().then(function (doc) {
    render(doc);
    banner.hidden = !doc.reprompt;
    document.body.setAttribute("data-consent-ready", "1");
  }, function (err) {
    status.textContent = "The consent service is not available: " + err.message;
    banner.hidden = false;
  });
  showEcho();
})();
