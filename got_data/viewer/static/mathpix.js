// Mathpix markdown -> HTML with KaTeX math: the subset GOT targets use (see docs/got-formats):
// \( \) and \[ \] math (also $ $ and $$ $$), \title{}, \section*{}, \subsection*{}, tabular
// with \hline, \multicolumn and \multirow, **bold**, *italic*, # headings and - lists.
// Math that KaTeX cannot parse is shown red with its source: a broken label must be visible.
"use strict";
(function () {
  const esc = (s) => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

  function math(src, display) {
    if (!window.katex) return `<code class="math-src">${esc(src)}</code>`;
    try {
      return window.katex.renderToString(src, { displayMode: display, throwOnError: true, strict: "ignore", trust: false, output: "html" });
    } catch (err) {
      return `<span class="math-error" title="${esc(String(err.message || err))}">${esc(display ? "\\[" + src + "\\]" : "\\(" + src + "\\)")}</span>`;
    }
  }

  // Find the matching closing brace of the group opening at s[i] === "{".
  function group(s, i) {
    let depth = 0;
    for (let j = i; j < s.length; j++) {
      if (s[j] === "\\") { j++; continue; }
      if (s[j] === "{") depth++;
      else if (s[j] === "}" && --depth === 0) return [s.slice(i + 1, j), j + 1];
    }
    return [s.slice(i + 1), s.length];
  }

  // Inline text: math spans rendered, the rest escaped with light markdown.
  function inline(s) {
    const re = /\\\(([\s\S]+?)\\\)|\\\[([\s\S]+?)\\\]|\$\$([\s\S]+?)\$\$|(?<![\\$])\$([^$\n]+?)\$/g;
    let out = "", last = 0, m;
    while ((m = re.exec(s))) {
      out += text(s.slice(last, m.index));
      const display = m[2] !== undefined || m[3] !== undefined;
      out += math(m[1] ?? m[2] ?? m[3] ?? m[4], display);
      last = re.lastIndex;
    }
    return out + text(s.slice(last));
  }

  function text(s) {
    let h = esc(s);
    h = h.replace(/\*\*(.+?)\*\*/g, "<strong>$1</strong>").replace(/(^|[^*])\*([^*\n]+)\*/g, "$1<em>$2</em>");
    h = h.replace(/\\textbf\{([^{}]*)\}/g, "<strong>$1</strong>").replace(/\\textit\{([^{}]*)\}/g, "<em>$1</em>");
    h = h.replace(/\\(%|&amp;|_|#|\$)/g, "$1");
    return h;
  }

  function tabular(body) {
    // Drop the column spec, split rows on \\ and cells on unescaped &.
    let s = body.trim();
    if (s.startsWith("{")) s = s.slice(group(s, 0)[1]);
    const rows = s.split(/\\\\(?:\[[^\]]*\])?/).map((r) => r.replace(/\\(hline|toprule|midrule|bottomrule|cline\{[^}]*\})/g, "").trim());
    const cover = new Map(); // column slots taken by rowspans from rows above
    let html = "<table class=\"mmd-table\">";
    rows.forEach((row, r) => {
      if (!row) return;
      html += "<tr>";
      let col = 0;
      for (const raw of row.split(/(?<!\\)&/)) {
        while ((cover.get(r) || new Set()).has(col)) col++;
        let cell = raw.trim(), span = 1, rows_ = 1;
        let m = cell.match(/^\\multicolumn\{(\d+)\}\{[^}]*\}/);
        if (m) { span = +m[1]; cell = group(cell, m[0].length)[0]; }
        m = cell.match(/^\\multirow\{(\d+)\}\{[^}]*\}/);
        if (m) {
          rows_ = +m[1]; cell = group(cell, m[0].length)[0];
          for (let k = 1; k < rows_; k++) {
            const set = cover.get(r + k) || new Set();
            for (let c = 0; c < span; c++) set.add(col + c);
            cover.set(r + k, set);
          }
        }
        html += `<td${span > 1 ? ` colspan="${span}"` : ""}${rows_ > 1 ? ` rowspan="${rows_}"` : ""}>${inline(cell)}</td>`;
        col += span;
      }
      html += "</tr>";
    });
    return html + "</table>";
  }

  const HEADS = { title: "h2", section: "h3", subsection: "h4", subsubsection: "h5" };

  function render(src) {
    let out = "";
    // Block-level pieces: tabular environments, headings, display math, paragraphs.
    const blockRe = /\\begin\{tabular\}([\s\S]*?)\\end\{tabular\}|\\(title|section|subsection|subsubsection)\*?\{/g;
    let last = 0, m;
    const paragraphs = (s) => s.split(/\n\s*\n/).map((p) => p.trim()).filter(Boolean).map(para).join("");
    while ((m = blockRe.exec(src))) {
      out += paragraphs(src.slice(last, m.index));
      if (m[1] !== undefined) {
        out += tabular(m[1]);
        last = blockRe.lastIndex;
      } else {
        const [inner, end] = group(src, blockRe.lastIndex - 1);
        out += `<${HEADS[m[2]]}>${inline(inner)}</${HEADS[m[2]]}>`;
        last = blockRe.lastIndex = end;
      }
    }
    return out + paragraphs(src.slice(last));
  }

  function para(p) {
    const h = p.match(/^(#{1,6})\s+(.*)$/s);
    if (h) return `<h${Math.min(h[1].length + 1, 6)}>${inline(h[2])}</h${Math.min(h[1].length + 1, 6)}>`;
    const lines = p.split("\n");
    if (lines.every((l) => /^\s*[-*]\s+/.test(l))) return "<ul>" + lines.map((l) => `<li>${inline(l.replace(/^\s*[-*]\s+/, ""))}</li>`).join("") + "</ul>";
    return `<p>${lines.map(inline).join("<br>")}</p>`;
  }

  window.Mathpix = { render, escape: esc };
})();
