// got-data view: a small hash-routed single page app. No framework, no CDN.
"use strict";
(function () {
  const $view = document.getElementById("view");
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const fmt = (n) => (n == null ? "–" : Number(n).toLocaleString("en-US"));
  const bytes = (n) => (n == null ? "–" : n > 1e9 ? (n / 1e9).toFixed(1) + " GB" : n > 1e6 ? (n / 1e6).toFixed(1) + " MB" : (n / 1e3).toFixed(0) + " kB");
  const QUERY_KEYS = ["ds", "task", "prompt", "q", "order", "seed", "flagged"];
  const PAGE = 60;
  let meta = null; // /api/datasets
  let keyHandler = null;

  async function api(path, params) {
    const qs = params ? "?" + new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v != null)) : "";
    const res = await fetch(path + qs);
    const body = await res.json();
    if (!res.ok) throw new Error(body.error || res.statusText);
    return body;
  }

  function toast(msg) {
    const t = document.getElementById("toast");
    t.textContent = msg;
    t.classList.add("show");
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => t.classList.remove("show"), 1600);
  }

  function parseHash() {
    const [route, qs] = location.hash.replace(/^#/, "").split("?");
    return { route: route || "overview", params: Object.fromEntries(new URLSearchParams(qs || "")) };
  }
  const link = (route, params) => "#" + route + "?" + new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v != null));
  const pick = (p) => Object.fromEntries(QUERY_KEYS.filter((k) => p[k] != null && p[k] !== "").map((k) => [k, p[k]]));

  async function route() {
    keyHandler = null;
    const { route, params } = parseHash();
    document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === (route === "sample" ? "browse" : route)));
    meta = meta || (await api("/api/datasets"));
    try {
      if (route === "browse") await browse(params);
      else if (route === "sample") await sample(params);
      else await overview();
    } catch (err) {
      $view.innerHTML = `<div class="error-box">${esc(err.message)}</div>`;
    }
  }

  // ---------------------------------------------------------------- overview
  async function overview() {
    meta = await api("/api/datasets");
    $view.innerHTML = `<section class="overview">${meta.datasets.map((d) => `
      <article class="dataset card" id="ds-${esc(d.id)}">
        <header><h2>${esc(d.id)}</h2><span class="engine">${esc(d.engine)} v${esc(d.engine_version)}</span>
          <a class="button" href="${link("browse", { ds: d.id })}">Browse →</a></header>
        <div class="stats">
          <div><b>${fmt(d.samples)}</b><span>samples</span></div>
          <div class="${d.errors ? "bad" : ""}"><b>${fmt(d.errors)}</b><span>errors</span></div>
          <div><b>${fmt(d.flagged)}</b><span>flagged</span></div>
          <div><b>${fmt(d.shards)}</b><span>shards</span></div>
          <div><b>${bytes(d.bytes)}</b><span>on disk</span></div>
          <div><b>${fmt(d.seed)}</b><span>seed</span></div>
        </div>
        <div class="cols">
          <div>
            <h3>Build parameters</h3>
            <table class="kv">${Object.entries(d.params).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(JSON.stringify(v))}</td></tr>`).join("") || "<tr><td>none</td></tr>"}
              <tr><th>n / shard size</th><td>${fmt(d.n)} / ${fmt(d.shard_size)}</td></tr>
              ${d.inputs.length ? `<tr><th>inputs</th><td>${d.inputs.map(esc).join("<br>")}</td></tr>` : ""}</table>
            <h3>Errors by reason</h3>
            <div class="reasons">${Object.entries(d.errors_by_reason).map(([r, c]) => `<span class="chip bad">${esc(r)} <b>${fmt(c)}</b></span>`).join("") || '<span class="muted">none</span>'}</div>
            <div class="error-list"></div>
          </div>
          <div class="plots"><div class="muted loading">computing plots…</div></div>
        </div>
      </article>`).join("")}</section>`;
    for (const d of meta.datasets) {
      const card = document.getElementById("ds-" + d.id);
      api("/api/overview", { ds: d.id }).then((o) => {
        card.querySelector(".plots").innerHTML = Object.values(o.plots).join("");
        if (o.errors.length) {
          card.querySelector(".error-list").innerHTML = `<details><summary>First ${o.errors.length} errors</summary><table class="errors">${o.errors
            .map((e) => `<tr><td>${fmt(e.position)}</td><td><span class="chip bad">${esc(e.reason)}</span></td><td>${esc(e.source || "")}</td><td class="detail">${esc(e.detail)}</td></tr>`)
            .join("")}</table></details>`;
        }
      }).catch((err) => { card.querySelector(".plots").innerHTML = `<div class="error-box">${esc(err.message)}</div>`; });
    }
  }

  // ------------------------------------------------------------------ browse
  async function browse(params) {
    const q = { order: "seq", seed: String(meta.seed), ...params };
    const page = Math.max(0, parseInt(q.page || "0", 10));
    const data = await api("/api/list", { ...pick(q), offset: page * PAGE, limit: PAGE });
    const option = (value, label, current) => `<option value="${esc(value)}"${value === current ? " selected" : ""}>${esc(label)}</option>`;
    const pages = Math.max(1, Math.ceil(data.total / PAGE));
    $view.innerHTML = `
      <form class="filters" autocomplete="off">
        <label>Dataset<select name="ds">${option("", "all datasets", q.ds || "")}${meta.datasets.map((d) => option(d.id, `${d.id} (${fmt(d.samples)})`, q.ds)).join("")}</select></label>
        <label>Task<select name="task">${option("", "any task", q.task || "")}${Object.entries(data.facets.tasks).map(([t, c]) => option(t, `${t} (${fmt(c)})`, q.task)).join("")}</select></label>
        <label>Prompt<select name="prompt">${option("", "any prompt", q.prompt || "")}${Object.entries(data.facets.prompts).map(([t, c]) => option(t, `${JSON.stringify(t)} (${fmt(c)})`, q.prompt)).join("")}</select></label>
        <label class="grow">Search targets<input name="q" type="search" value="${esc(q.q || "")}" placeholder="text in the target…"></label>
        <label>Order<select name="order">${option("seq", "sequential", q.order)}${option("random", "random", q.order)}</select></label>
        <label class="seed">Seed<input name="seed" type="number" value="${esc(q.seed)}"></label>
        <label class="check"><input name="flagged" type="checkbox" value="1"${q.flagged ? " checked" : ""}> flagged only</label>
      </form>
      <div class="pager">
        <span class="count"><b>${fmt(data.total)}</b> samples${data.total ? ` · showing ${fmt(data.offset + 1)}–${fmt(data.offset + data.items.length)}` : ""}</span>
        <span class="spacer"></span>
        ${q.order === "random" ? '<button type="button" data-act="reshuffle">Reshuffle</button>' : ""}
        <a class="button${page > 0 ? "" : " disabled"}" href="${link("browse", { ...pick(q), page: page - 1 })}">← Prev</a>
        <span class="muted">page ${fmt(page + 1)} / ${fmt(pages)}</span>
        <a class="button${page + 1 < pages ? "" : " disabled"}" href="${link("browse", { ...pick(q), page: page + 1 })}">Next →</a>
      </div>
      <div class="grid">${data.items.map((it, n) => `
        <a class="tile${it.flagged ? " flagged" : ""}" href="${link("sample", { ...pick(q), key: it.key, sds: it.ds, i: data.offset + n })}" data-key="${esc(it.key)}">
          <div class="thumb"><img loading="lazy" src="/api/thumb?ds=${encodeURIComponent(it.ds)}&key=${encodeURIComponent(it.key)}" alt=""></div>
          <div class="info">
            <div class="row"><span class="chip">${esc(it.task)}</span>${it.images > 1 ? `<span class="chip">${it.images} images</span>` : ""}<span class="dim">${it.width}×${it.height}</span>${it.flagged ? '<span class="flag-mark" title="flagged">⚑</span>' : ""}</div>
            <div class="prompt">${esc(it.prompt)}</div>
            <div class="target">${esc(it.target)}${it.target_chars > it.target.length ? "…" : ""}</div>
            <div class="key">${esc(it.ds)} · ${esc(it.key)}</div>
          </div>
        </a>`).join("") || '<div class="muted empty">Nothing matches these filters.</div>'}</div>`;
    const form = $view.querySelector(".filters");
    const apply = () => {
      const f = new FormData(form);
      const next = Object.fromEntries([...f.entries()].filter(([, v]) => v !== ""));
      if (next.ds !== q.ds) { delete next.task; delete next.prompt; }
      location.hash = link("browse", next);
    };
    form.addEventListener("change", apply);
    form.addEventListener("submit", (e) => { e.preventDefault(); apply(); });
    const reshuffle = $view.querySelector('[data-act="reshuffle"]');
    if (reshuffle) reshuffle.addEventListener("click", () => { location.hash = link("browse", { ...pick(q), seed: Math.floor(Math.random() * 1e6) }); });
    keyHandler = (e) => {
      if (e.target.closest("input, select")) return;
      if (e.key === "j" || e.key === "ArrowRight") { if (page + 1 < pages) location.hash = link("browse", { ...pick(q), page: page + 1 }); }
      else if (e.key === "k" || e.key === "ArrowLeft") { if (page > 0) location.hash = link("browse", { ...pick(q), page: page - 1 }); }
      else return;
      e.preventDefault();
    };
  }

  // ------------------------------------------------------------------ sample
  let zoom = "fit";

  async function sample(params) {
    const ds = params.sds || params.ds;
    const rec = await api("/api/sample", { ds, key: params.key });
    const i = params.i != null ? parseInt(params.i, 10) : null;
    const q = pick(params);
    const listParams = { order: "seq", seed: String(meta.seed), ...q };
    const img0 = rec.images[0];
    const boxes = rec.boxes || [];
    const colors = rec.colors || [];
    const overlay = boxes.map((b, n) => {
      const c = cssColor(colors[n] || colors[0]);
      const sw = Math.max(2, img0.width / 400);
      if (b.length === 2) return `<circle cx="${b[0]}" cy="${b[1]}" r="${sw * 4}" fill="none" stroke="${c}" stroke-width="${sw}"/>`;
      return `<rect x="${b[0]}" y="${b[1]}" width="${b[2] - b[0]}" height="${b[3] - b[1]}" fill="${c}" fill-opacity="0.08" stroke="${c}" stroke-width="${sw}" vector-effect="non-scaling-stroke"/>` +
        `<text x="${b[0]}" y="${b[1]}" dy="-4" fill="${c}" font-size="${Math.max(12, img0.width / 60)}" font-family="sans-serif">${n + 1}${colors[n] ? " " + esc(colors[n]) : ""}</text>`;
    }).join("");
    const images = rec.images.map((im, n) => `
      <figure class="frame" data-w="${im.width}" data-h="${im.height}">
        <div class="stage">
          <img src="/api/image?ds=${encodeURIComponent(ds)}&key=${encodeURIComponent(rec.key)}&i=${n}" width="${im.width}" height="${im.height}" alt="${esc(im.name)}">
          ${n === 0 && boxes.length ? `<svg class="overlay" viewBox="0 0 ${im.width} ${im.height}" preserveAspectRatio="none" aria-label="boxes">${overlay}</svg>` : ""}
        </div>
        <figcaption>${esc(im.name)} · ${im.width}×${im.height} · ${bytes(im.size)}</figcaption>
      </figure>`).join("");
    $view.innerHTML = `
      <div class="sample-bar">
        <a class="button" href="${link("browse", { ...q, page: i != null ? Math.floor(i / PAGE) : 0 })}">← Grid</a>
        <button type="button" data-act="prev" ${i ? "" : "disabled"}>← Prev</button>
        <button type="button" data-act="next" ${i != null ? "" : "disabled"}>Next →</button>
        <span class="where">${i != null ? `#${fmt(i + 1)}` : ""} <b>${esc(rec.key)}</b> <span class="dim">${esc(ds)} · shard ${rec.shard} · position ${fmt(rec.position)}</span></span>
        <span class="spacer"></span>
        <span class="zoom"><button type="button" data-zoom="fit">Fit</button><button type="button" data-zoom="1">1:1</button><button type="button" data-zoom="2">2×</button><button type="button" data-zoom="out">−</button><button type="button" data-zoom="in">+</button></span>
        ${boxes.length ? '<label class="check"><input type="checkbox" data-act="overlay" checked> boxes</label>' : ""}
        <button type="button" class="flag${rec.flagged ? " on" : ""}" data-act="flag">${rec.flagged ? "⚑ Flagged" : "⚐ Flag"}</button>
      </div>
      <div class="sample">
        <div class="images">${images}</div>
        <div class="text">
          <div class="card"><h3>Prompt</h3><pre class="prompt">${esc(rec.prompt)}</pre>
            <div class="row"><span class="chip">${esc(rec.task)}</span>${rec.source ? `<span class="dim" title="source">${esc(rec.source)}</span>` : ""}</div></div>
          <div class="card"><h3>Target rendered <span class="dim">${esc(rec.render)}</span></h3><div class="rendered" data-kind="${esc(rec.render)}"></div></div>
          <div class="card"><h3>Raw target <span class="dim">${fmt(rec.target.length)} chars</span></h3><pre class="raw">${esc(rec.target)}</pre></div>
          ${Object.keys(rec.meta || {}).length ? `<details class="card"><summary>meta</summary><pre class="raw">${esc(JSON.stringify(rec.meta, null, 1))}</pre></details>` : ""}
        </div>
      </div>`;
    renderTarget(rec, ds, $view.querySelector(".rendered"));
    applyZoom();

    const go = async (delta) => {
      if (i == null || i + delta < 0) return;
      const page = await api("/api/list", { ...listParams, offset: i + delta, limit: 1 });
      const it = page.items[0];
      if (!it) { toast("end of the list"); return; }
      location.hash = link("sample", { ...q, key: it.key, sds: it.ds, i: i + delta });
    };
    const flag = async () => {
      const res = await fetch("/api/flag", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ ds, key: rec.key, flagged: !rec.flagged }) });
      const body = await res.json();
      if (!res.ok) { toast(body.error); return; }
      rec.flagged = body.flagged;
      const b = $view.querySelector('[data-act="flag"]');
      b.classList.toggle("on", rec.flagged);
      b.textContent = rec.flagged ? "⚑ Flagged" : "⚐ Flag";
      toast(rec.flagged ? "flagged" : "unflagged");
    };
    $view.querySelector('[data-act="prev"]').addEventListener("click", () => go(-1));
    $view.querySelector('[data-act="next"]').addEventListener("click", () => go(1));
    $view.querySelector('[data-act="flag"]').addEventListener("click", flag);
    const ov = $view.querySelector('[data-act="overlay"]');
    if (ov) ov.addEventListener("change", () => $view.querySelectorAll(".overlay").forEach((s) => s.classList.toggle("hidden", !ov.checked)));
    $view.querySelectorAll("[data-zoom]").forEach((b) => b.addEventListener("click", () => setZoom(b.dataset.zoom)));
    keyHandler = (e) => {
      if (e.target.closest("input, select, textarea") || e.metaKey || e.ctrlKey || e.altKey) return;
      if (e.key === "j" || e.key === "ArrowRight") go(1);
      else if (e.key === "k" || e.key === "ArrowLeft") go(-1);
      else if (e.key === "f") flag();
      else if (e.key === "Escape") location.hash = link("browse", { ...q, page: i != null ? Math.floor(i / PAGE) : 0 });
      else if (e.key === "+" || e.key === "=") setZoom("in");
      else if (e.key === "-") setZoom("out");
      else if (e.key === "0") setZoom("fit");
      else return;
      e.preventDefault();
    };
  }

  function setZoom(z) {
    const cur = zoom === "fit" ? currentScale() : zoom;
    if (z === "in") zoom = Math.min(8, cur * 1.25);
    else if (z === "out") zoom = Math.max(0.1, cur / 1.25);
    else zoom = z === "fit" ? "fit" : parseFloat(z);
    applyZoom();
  }
  function currentScale() {
    const f = $view.querySelector(".frame");
    return f ? f.querySelector(".stage").getBoundingClientRect().width / parseFloat(f.dataset.w) : 1;
  }
  function applyZoom() {
    $view.querySelectorAll(".frame").forEach((f) => {
      const stage = f.querySelector(".stage");
      if (zoom === "fit") { stage.style.width = ""; stage.classList.add("fit"); }
      else { stage.classList.remove("fit"); stage.style.width = Math.round(parseFloat(f.dataset.w) * zoom) + "px"; }
    });
    $view.querySelectorAll("[data-zoom]").forEach((b) => b.classList.toggle("on", String(zoom) === b.dataset.zoom));
  }

  const COLORS = { red: "#e02424", green: "#16a34a", blue: "#2563eb" };
  const cssColor = (c) => (c && /^[a-z]+$|^#[0-9a-f]{3,8}$/i.test(c) ? COLORS[c] || c : "#f59e0b");

  function renderTarget(rec, ds, el) {
    const kind = rec.render;
    if (kind === "markdown") {
      el.innerHTML = `<div class="mmd">${window.Mathpix.render(rec.target)}</div>`;
    } else if (kind === "chart") {
      el.innerHTML = chartTable(JSON.parse(rec.target));
    } else {
      const url = `/api/render/${kind}?ds=${encodeURIComponent(ds)}&key=${encodeURIComponent(rec.key)}`;
      el.innerHTML = `<div class="muted loading">rendering ${esc(kind)}…</div>`;
      const img = new Image();
      img.className = "svg-render";
      img.alt = `${kind} rendered back`;
      img.onload = () => { el.innerHTML = ""; el.appendChild(img); };
      img.onerror = async () => {
        const res = await fetch(url);
        el.innerHTML = `<div class="error-box">${esc(kind)} could not be rendered: ${esc(await res.text())}</div>`;
      };
      img.src = url;
    }
  }

  function chartTable(c) {
    const headKeys = Object.keys(c).filter((k) => k !== "values");
    let html = `<table class="kv">${headKeys.map((k) => `<tr><th>${esc(k)}</th><td>${esc(typeof c[k] === "string" ? c[k] : JSON.stringify(c[k]))}</td></tr>`).join("")}</table>`;
    const v = c.values;
    if (v && typeof v === "object") {
      const series = Object.entries(v);
      const nested = series.length && series.every(([, s]) => s && typeof s === "object");
      if (nested) {
        const cats = [];
        series.forEach(([, s]) => Object.keys(s).forEach((k) => { if (!cats.includes(k)) cats.push(k); }));
        html += `<table class="data"><tr><th></th>${series.map(([n]) => `<th>${esc(n)}</th>`).join("")}</tr>${cats
          .map((k) => `<tr><th>${esc(k)}</th>${series.map(([, s]) => `<td>${esc(s[k] ?? "")}</td>`).join("")}</tr>`).join("")}</table>`;
      } else {
        html += `<table class="data"><tr><th></th><th>value</th></tr>${series.map(([k, x]) => `<tr><th>${esc(k)}</th><td>${esc(x)}</td></tr>`).join("")}</table>`;
      }
    }
    return `<div class="chart">${html}</div>`;
  }

  document.addEventListener("keydown", (e) => { if (keyHandler) keyHandler(e); });
  window.addEventListener("hashchange", route);
  window.addEventListener("DOMContentLoaded", route);
})();
