// edge-mfa WebAuthn page script: served by the filter at /.mfa/assets/webauthn.js (CSP 'self').
// Buttons carry data-webauthn="login" or "register"; the status element shows errors in words.
(function () {
  "use strict";
  function b64uToBuf(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function bufToB64u(buf) {
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function decodeCreation(pk) {
    pk.challenge = b64uToBuf(pk.challenge);
    pk.user.id = b64uToBuf(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) { c.id = b64uToBuf(c.id); });
    return pk;
  }
  function decodeRequest(pk) {
    pk.challenge = b64uToBuf(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = b64uToBuf(c.id); });
    return pk;
  }
  function encodeCredential(cred) {
    var r = cred.response, out = {
      id: cred.id, rawId: bufToB64u(cred.rawId), type: cred.type,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: bufToB64u(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      out.response.attestationObject = bufToB64u(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = bufToB64u(r.authenticatorData);
      out.response.signature = bufToB64u(r.signature);
      if (r.userHandle) out.response.userHandle = bufToB64u(r.userHandle);
    }
    return out;
  }
  function explain(err) {
    var name = err && err.name;
    if (name === "NotAllowedError") return "The request was cancelled or timed out. Try again.";
    if (name === "InvalidStateError") return "This key is already registered.";
    if (name === "SecurityError") return "This page's address is not allowed for security keys.";
    if (name === "NotSupportedError") return "This browser or key does not support the request.";
    if (name === "AbortError") return "The request was cancelled.";
    return (err && err.message) || "Something went wrong. Try again.";
  }
  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "content-type": "application/json", "accept": "application/json" },
      body: JSON.stringify(body)
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (j) {
        if (!res.ok) throw new Error(j.message || j.error || ("HTTP " + res.status));
        return j;
      });
    });
  }
  var conditional = null; // AbortController of a pending autofill (conditional) passkey request

  function run(button) {
    if (conditional) { conditional.abort(); conditional = null; }
    var kind = button.getAttribute("data-webauthn");
    var next = button.getAttribute("data-next") || "/";
    var status = document.getElementById("webauthn-status");
    var nameInput = document.getElementById("webauthn-name");
    function show(msg) { if (status) { status.textContent = msg; status.hidden = !msg; } }
    if (!window.PublicKeyCredential) { show("This browser does not support security keys or passkeys."); return; }
    show("");
    button.disabled = true;
    var p;
    if (kind === "register") {
      p = post("/.mfa/webauthn/register/begin", {}).then(function (o) {
        return navigator.credentials.create({ publicKey: decodeCreation(o.publicKey) });
      }).then(function (cred) {
        return post("/.mfa/webauthn/register/finish", {
          credential: encodeCredential(cred), name: nameInput ? nameInput.value : "", next: next
        });
      });
    } else {
      p = post("/.mfa/webauthn/login/begin", { next: next }).then(function (o) {
        var req = { publicKey: decodeRequest(o.publicKey) };
        return navigator.credentials.get(req);
      }).then(function (cred) {
        var trust = document.getElementById("trust-device");
        return post("/.mfa/webauthn/login/finish", {
          credential: encodeCredential(cred), next: next, trust_device: !!(trust && trust.checked)
        });
      });
    }
    p.then(function (j) { window.location.assign(j.next || next); })
     .catch(function (e) { show(explain(e)); button.disabled = false; });
  }
  // Passkey autofill on the quick-login page: the browser offers saved passkeys in the user
  // name field; choosing one signs in without a click on the button.
  function startConditional() {
    var field = document.querySelector("input[autocomplete~=webauthn]");
    var button = document.querySelector("[data-webauthn=login]");
    if (!field || !button || !window.PublicKeyCredential || !PublicKeyCredential.isConditionalMediationAvailable) return;
    PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
      if (!ok) return;
      var next = button.getAttribute("data-next") || "/";
      var ctl = new AbortController();
      conditional = ctl;
      post("/.mfa/webauthn/login/begin", { next: next }).then(function (o) {
        return navigator.credentials.get({ publicKey: decodeRequest(o.publicKey), mediation: "conditional", signal: ctl.signal });
      }).then(function (cred) {
        return post("/.mfa/webauthn/login/finish", { credential: encodeCredential(cred), next: next });
      }).then(function (j) { window.location.assign(j.next || next); })
        .catch(function () { /* aborted or dismissed: the button still works */ });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    startConditional();
    var buttons = document.querySelectorAll("[data-webauthn]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].addEventListener("click", function (ev) { ev.preventDefault(); run(ev.currentTarget); });
      buttons[i].hidden = false;
    }
  });
})();
