// Typing a target or a threshold means "decide by that": select its mode, so the
// preview (sent by htmx after a short delay) shows what was typed.
document.addEventListener("input", (event) => {
  const field = event.target;
  if (!(field instanceof HTMLInputElement) || !field.form || field.form.id !== "rule-form") return;
  const mode = { target: "target", threshold: "threshold" }[field.name];
  const radio = mode && field.form.querySelector(`input[name="mode"][value="${mode}"]`);
  if (radio && !radio.checked) radio.checked = true;
});
