// Page side of renderers/echarts_charts.py: one live ECharts instance per (theme, size),
// each chart is a setOption(option, true) on it and a getDataURL.
(function () {
  'use strict';
  var charts = new Map();
  var MAX_CHARTS = 12;
  var last = null;

  function chartFor(theme, width, height) {
    var key = (theme || '') + '|' + width + 'x' + height;
    var chart = charts.get(key);
    if (chart && !chart.isDisposed()) return { key: key, chart: chart };
    if (charts.size >= MAX_CHARTS) drop(charts.keys().next().value);
    var div = document.createElement('div');
    // Off-screen: ECharts still draws into its canvas, but Chromium never paints or composites it.
    div.style.cssText = 'position:absolute;left:-40000px;top:0;width:' + width + 'px;height:' + height + 'px';
    document.body.appendChild(div);
    chart = echarts.init(div, theme || null, { renderer: 'canvas', width: width, height: height, devicePixelRatio: 1 });
    charts.set(key, chart);
    return { key: key, chart: chart };
  }

  function drop(key) {
    var chart = charts.get(key);
    charts.delete(key);
    if (!chart) return;
    var div = chart.getDom();
    if (!chart.isDisposed()) chart.dispose();
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

  function opaque(color) {
    if (!color || typeof color !== 'string' || color === 'transparent') return false;
    var rgba = color.match(/^rgba\(([^)]*)\)$/);
    return !rgba || parseFloat(rgba[1].split(',')[3]) >= 1;
  }

  window.gotRender = function (req) {
    var slot = chartFor(req.theme, req.width, req.height);
    attachLabels(req.option, req.labels || []);
    req.option.animation = false;
    try {
      slot.chart.setOption(req.option, true);
    } catch (err) {
      drop(slot.key); // a half-applied option can leave the instance unusable
      throw err;
    }
    last = slot.chart;
    // The texts come back with the pixels so every chart is checked for clipping at no extra call.
    // An opaque background (the theme's, or white when it has none) so Python only drops alpha.
    var bg = slot.chart.getModel().get('backgroundColor');
    var url = slot.chart.getDataURL({ type: 'png', pixelRatio: 1, backgroundColor: opaque(bg) ? bg : '#ffffff' });
    return { url: url, texts: window.gotTexts() };
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
