// Scroll the cited passage into view and move focus there for keyboard and screen-reader users.
const highlighted = document.querySelector(".passage.highlighted");
if (highlighted) {
  highlighted.tabIndex = -1;
  highlighted.scrollIntoView({ block: "center" });
  highlighted.focus({ preventScroll: true });
}
