// The review card from the keyboard. Every shortcut is listed in the "?" dialog
// (templates/reviews/_shortcuts.html); keep the two in step.
(() => {
  const card = () => document.getElementById("task-card");
  // The similar-items panel (#similar) loads on its own; its requests never hold up a decision.
  const busy = (c) =>
    c.classList.contains("htmx-request") ||
    [...c.querySelectorAll(".htmx-request")].some((el) => !el.closest("#similar"));
  const isField = (el) =>
    el instanceof HTMLInputElement ||
    el instanceof HTMLTextAreaElement ||
    el instanceof HTMLSelectElement;
  const visible = (el) => el && !el.closest("li[hidden]");
  let lastAnnounced = "";

  // A short summary for screen readers (the card itself is not a live region: reading
  // the whole text after every decision is what made it unusable).
  function announce() {
    const c = card();
    const region = document.getElementById("announce");
    if (!c || !region) return;
    const message = c.querySelector(".notice, .error");
    // Each part may end with its own full stop: join without doubling it.
    const text = [message ? message.textContent.trim() : "", c.dataset.summary || ""]
      .map((part) => part.replace(/[.\s]+$/, ""))
      .filter(Boolean)
      .join(". ");
    if (text !== lastAnnounced) {
      region.textContent = text;
      lastAnnounced = text;
    }
  }

  // Focus the new card after a swap, unless the analyst is busy elsewhere (a filter
  // outside the card keeps its focus while the empty queue refreshes).
  function focusCard() {
    const c = card();
    if (!c) return;
    // Keys pressed between the swap and this call may already have moved the focus
    // (into the type-ahead, a note): leave it there.
    const active = document.activeElement;
    if (active && active !== document.body && document.contains(active)) {
      announce();
      return;
    }
    (c.querySelector("[data-autofocus]") || c).focus();
    announce();
  }

  // htmx re-focuses the element with the same id after a swap: a new card would open
  // with the focus in its skip note (or comment) because the last one was sent from there.
  document.addEventListener("htmx:beforeSwap", (event) => {
    const c = card();
    if (c && event.detail.target === c && c.contains(document.activeElement)) {
      document.activeElement.blur();
    }
  });

  document.addEventListener("htmx:load", (event) => {
    if (event.detail.elt && event.detail.elt.id === "task-card") focusCard();
  });
  document.addEventListener("DOMContentLoaded", focusCard);

  // Hide the categories that do not match, and mark the one Enter will pick.
  function filterChoices(input) {
    const needle = input.value.trim().toLowerCase();
    let first = null;
    for (const button of card().querySelectorAll("button.choice")) {
      const matches = !needle || button.dataset.name.includes(needle) || button.dataset.key === needle;
      button.closest("li").hidden = !matches;
      button.classList.remove("will-pick");
      if (matches && needle && !first) first = button;
    }
    if (first) first.classList.add("will-pick");
  }

  document.addEventListener("input", (event) => {
    if (event.target.id === "category-filter") filterChoices(event.target);
  });

  // The bulk panel's "Select all above X%": tick the rows at least that similar, untick the rest.
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-select-above]");
    if (!button) return;
    const floor = parseFloat(button.dataset.selectAbove);
    for (const box of button.form.querySelectorAll("input[data-similarity]")) {
      box.checked = parseFloat(box.dataset.similarity) >= floor - 1e-9;
    }
  });

  function toggleShortcuts() {
    const dialog = document.getElementById("shortcuts");
    if (!dialog) return;
    if (dialog.open) dialog.close();
    else dialog.showModal();
  }

  function focusField(c, id) {
    const field = c.querySelector(`#${id}`);
    if (!field) return false;
    const folded = field.closest("details");
    if (folded) folded.open = true;
    field.focus();
    return true;
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const c = card();
    const target = event.target;
    if (target instanceof HTMLElement && target.id === "category-filter") {
      if (event.key === "Enter") {
        // Not the form's default submit (its first button): the first visible match.
        event.preventDefault();
        const first = [...c.querySelectorAll("button.choice")].find(visible);
        if (first && !busy(c)) first.click();
      } else if (event.key === "Escape") {
        target.value = "";
        filterChoices(target);
        c.focus();
      }
      return;
    }
    if (isField(target)) {
      if (event.key === "Escape") c ? c.focus() : target.blur();
      return;
    }
    if (event.repeat) return;
    if (event.key === "?") {
      event.preventDefault();
      toggleShortcuts();
      return;
    }
    if (!c || busy(c) || document.querySelector("dialog[open]")) return;
    const mode = c.dataset.mode;
    const deciding = mode === "decide" || mode === "change";
    let handled = false;
    if (event.key === "Enter") {
      // On a button or link, Enter is that control's; on the card it accepts the suggestion.
      if (target === c || target === document.body) {
        const suggested = c.querySelector("button[data-suggested]");
        if (deciding && suggested) {
          suggested.click();
          handled = true;
        }
      }
    } else if (event.key === "Escape" && mode === "change") {
      const keep = c.querySelector("[data-keep]");
      if (keep) keep.click();
      handled = Boolean(keep);
    } else if (event.key === "/" && deciding) {
      handled = focusField(c, "category-filter");
    } else if (event.key === "c" && deciding) {
      handled = focusField(c, "decision-comment");
    } else if (event.key === "s" && mode === "decide") {
      handled = focusField(c, "skip-note");
    } else if (event.key === "e" && mode === "decide") {
      handled = focusField(c, "escalate-note");
    } else if (event.key === "u") {
      const undo = c.querySelector("[data-undo]");
      if (undo) undo.click();
      handled = Boolean(undo);
    } else if (deciding && event.key.length === 1) {
      const button = c.querySelector(`button.choice[data-key="${CSS.escape(event.key)}"]`);
      if (button && visible(button)) {
        button.click();
        handled = true;
      }
    }
    if (handled) event.preventDefault();
  });
})();
