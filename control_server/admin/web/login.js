// The login form: on success the server sets the session cookie and we go to the dashboard.
"use strict";
document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const error = document.getElementById("login-error");
  error.hidden = true;
  const response = await fetch("/api/login", {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({name: form.elements.namedItem("name").value, password: form.elements.namedItem("password").value}),
  });
  if (response.ok) {
    window.location.assign("/");
    return;
  }
  const answer = await response.json().catch(() => ({}));
  error.textContent = answer.error || `log in failed (HTTP ${response.status})`;
  error.hidden = false;
});
