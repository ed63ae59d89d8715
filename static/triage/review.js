// Number keys decide the current task: key N clicks the Nth category button.
document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  const target = event.target;
  if (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement) return;
  const card = document.getElementById("task-card");
  // Ignore keys while a decision is in flight, so one key press decides one task.
  if (!card || card.classList.contains("htmx-request") || card.querySelector(".htmx-request")) return;
  const button = card.querySelector(`button[data-key="${event.key}"]`);
  if (button) {
    event.preventDefault();
    button.click();
  }
});
