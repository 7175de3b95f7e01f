// The token prompt: a modal dialog asking for the server's bearer token,
// shown when the API answers 401 (or the live feed closes with 1008).

const $ = (id) => document.getElementById(id);

// Resolves with the token the user typed; the dialog stays up until then.
export function askToken(reason) {
  const dialog = $("token-dialog");
  $("token-reason").textContent = reason;
  $("token-input").value = "";
  return new Promise((resolve) => {
    const form = $("token-form");
    const done = (event) => {
      event.preventDefault();
      const token = $("token-input").value.trim();
      if (!token) return;
      form.removeEventListener("submit", done);
      dialog.close();
      resolve(token);
    };
    form.addEventListener("submit", done);
    // Escape would close it with no token, and every request waits on it.
    dialog.addEventListener("cancel", (event) => event.preventDefault(), { once: true });
    if (!dialog.open) dialog.showModal();
  });
}
