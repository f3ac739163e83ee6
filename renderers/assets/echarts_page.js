// Page side of renderers/echarts_charts.py: one live ECharts instance per (theme, size); each
// chart is a setOption(option, true) on it, then its own canvas is encoded (no composited copy).
(function () {
  'use strict';
  var charts = new Map();
  var MAX_CHARTS = 12;
  var last = null;
  var backgrounds = new Map(); // theme -> its own backgroundColor


  // One instance per canvas size; the theme is switched in place (a new instance per theme
  // would pay ECharts' init and a fresh canvas for nearly every chart: ~37 themes x sizes).
  function chartFor(theme, width, height) {
    var key = width + 'x' + height;
    var slot = charts.get(key);
    if (!slot || slot.chart.isDisposed()) {
      if (charts.size >= MAX_CHARTS) drop(charts.keys().next().value);
      var div = document.createElement('div');
      // Not rendered (display:none): ECharts still draws into its canvas, but Chromium never lays out,
      // paints or composites it, so a chart costs no frame (less renderer CPU than off-screen).
      div.style.cssText = 'display:none;width:' + width + 'px;height:' + height + 'px';
      document.body.appendChild(div);
      var chart = echarts.init(div, null, { renderer: 'canvas', width: width, height: height, devicePixelRatio: 1 });
      chart.setOption({ series: [] }, true); // setTheme needs a model
      slot = { key: key, chart: chart, theme: null };
      charts.set(key, slot);
    }
    // Always start from an empty chart: elements of equal z are drawn in the order their views
    // were created, which on a reused chart depends on the previous option (pyecharts gives the
    // area fill and the split lines z 0 both), so without this the same option could draw differently.
    slot.chart.clear();
    theme = theme || null;
    if (slot.theme !== theme) {
      slot.chart.setTheme(theme || 'default'); // on the empty chart, so it re-renders nothing
      slot.theme = theme;
    }
    if (!backgrounds.has(theme)) backgrounds.set(theme, slot.chart.getModel().get('backgroundColor'));
    return slot;
  }

  function drop(key) {
    var slot = charts.get(key);
    charts.delete(key);
    if (!slot) return;
    var div = slot.chart.getDom();
    if (!slot.chart.isDisposed()) slot.chart.dispose();
    if (div && div.parentNode) div.parentNode.removeChild(div);
  }

  // Value labels are the exact strings of the spec, never ECharts' number formatting:
  // labels[i] is series i's list, one string per data item (radar: one list per polygon).
  function attachLabels(option, labels) {
    (option.series || []).forEach(function (series, i) {
      var texts = labels[i];
      if (!texts) return;
      series.label = Object.assign({}, series.label || {}, {
        show: true,
        formatter: function (p) {
          var text = texts[p.dataIndex];
          return Array.isArray(text) ? text[p.dimensionIndex] : text;
        },
      });
    });
  }

  // The background as an opaque colour (translucent ones composited over white, none -> white),
  // so ECharts fills its own bottom layer with it and that canvas is the finished image.
  function opaqueBackground(color) {
    if (color == null || color === 'transparent' || color === 'none') return '#ffffff';
    if (typeof color !== 'string') return null; // a gradient or pattern: composite the slow way
    var rgba = echarts.color.parse(color);
    if (!rgba) return null;
    var a = rgba[3] == null ? 1 : rgba[3];
    if (a >= 1) return color;
    var mix = function (c) { return Math.round(c * a + 255 * (1 - a)); };
    return 'rgb(' + mix(rgba[0]) + ',' + mix(rgba[1]) + ',' + mix(rgba[2]) + ')';
  }

  // The chart's only layer when it has one (the usual case: no copy); else all layers composited.
  function finishedCanvas(chart, background) {
    var painter = chart.getZr().painter;
    var layers = painter.getLayers();
    var levels = Object.keys(layers);
    if (background && levels.length === 1 && layers[levels[0]].__builtin__) return layers[levels[0]].dom;
    return painter.getRenderedCanvas({ backgroundColor: background || '#ffffff', pixelRatio: 1 });
  }

  // A new canvas (and 2D context) under every layer before each chart. Chromium keeps per-context
  // caches (shaped text runs, fonts) that make the same text rasterise a sub-pixel differently
  // after other charts were drawn on that canvas; a fresh context draws every chart as the first.
  function freshCanvases(chart) {
    var layers = chart.getZr().painter.getLayers();
    Object.keys(layers).forEach(function (z) {
      var layer = layers[z];
      if (!layer.__builtin__ || !layer.dom || !layer.dom.parentNode) return;
      var canvas = layer.dom.cloneNode(false);
      layer.dom.parentNode.replaceChild(canvas, layer.dom);
      layer.dom = canvas;
      layer.initContext();
      layer.__dirty = true;
      layer.setUnpainted();
    });
  }

  window.gotRender = function (req) {
    var slot = chartFor(req.theme, req.width, req.height);
    var option = req.option;
    attachLabels(option, req.labels || []);
    option.animation = false;
    var background = opaqueBackground(option.backgroundColor != null ? option.backgroundColor : backgrounds.get(slot.theme));
    if (background) option.backgroundColor = background;
    freshCanvases(slot.chart);
    try {
      slot.chart.setOption(option, true);
    } catch (err) {
      drop(slot.key); // a half-applied option can leave the instance unusable
      throw err;
    }
    last = slot.chart;
    slot.chart.getZr().flush(); // setOption already painted; this is a no-op unless something is pending
    // The texts come back with the pixels so every chart is checked for clipping at no extra call.
    return { url: finishedCanvas(slot.chart, background).toDataURL('image/png'), texts: window.gotTexts() };
  };

  // Every visible text drawn by the last chart with its bounding box in canvas pixels (for tests).
  window.gotTexts = function () {
    var out = [];
    last.getZr().storage.getDisplayList(true).forEach(function (el) {
      if ((el.type !== 'tspan' && el.type !== 'text') || el.invisible || el.ignore) return;
      var text = el.style && el.style.text;
      if (text == null || String(text) === '') return;
      if (el.style.opacity === 0) return;
      var rect = el.getBoundingRect().clone();
      var m = el.getComputedTransform();
      if (m) rect.applyTransform(m);
      out.push({ text: String(text), x: rect.x, y: rect.y, width: rect.width, height: rect.height });
    });
    return out;
  };

  window.gotThemes = function () {
    return Object.keys(window.__gotThemes || {});
  };
})();
