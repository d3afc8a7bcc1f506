// What the console's accessibility test checks in the page (run with page.evaluate):
// form controls without an accessible name, and text whose contrast with its background
// is below WCAG AA (4.5:1; 3:1 for large text). Returns a list of problems.
() => {
  const problems = [];
  for (const el of document.querySelectorAll("input, select, textarea, button")) {
    if (el.hidden || el.closest("template")) continue;
    const named = (el.labels && el.labels.length) || el.getAttribute("aria-label") ||
      (el.tagName === "BUTTON" && el.textContent.trim());
    if (!named) problems.push(`no accessible name: ${el.outerHTML.slice(0, 80)}`);
  }
  const rgba = (s) => {
    const m = s.match(/rgba?\(([^)]+)\)/);
    if (!m) return [0, 0, 0, 0];
    const p = m[1].split(",").map((x) => parseFloat(x));
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const lum = ([r, g, b]) => {
    const c = [r, g, b].map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const background = (el) => {
    for (let n = el; n; n = n.parentElement) {
      const bg = rgba(getComputedStyle(n).backgroundColor);
      if (bg[3] > 0.5) return bg;
    }
    return [255, 255, 255, 1];
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  for (let t = walker.nextNode(); t; t = walker.nextNode()) {
    const el = t.parentElement;
    if (!t.textContent.trim() || seen.has(el) || !el.offsetParent) continue;
    if (el.closest(".visually-hidden, template")) continue;
    seen.add(el);
    const style = getComputedStyle(el);
    const fg = lum(rgba(style.color));
    const bg = lum(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && parseInt(style.fontWeight, 10) >= 700);
    if (ratio < (large ? 3 : 4.5)) {
      problems.push(`contrast ${ratio.toFixed(2)}: "${t.textContent.trim().slice(0, 40)}"`);
    }
  }
  return problems;
}
