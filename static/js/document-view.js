// Scroll the quoted evidence (or else the cited passage) into view and move focus there for
// keyboard and screen-reader users.
const target = document.querySelector(".passage.highlighted mark.evidence") || document.querySelector(".passage.highlighted");
if (target) {
  target.tabIndex = -1;
  target.scrollIntoView({ block: "center" });
  target.focus({ preventScroll: true });
}
