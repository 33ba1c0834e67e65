// Wardgate console: the spend chart. Reads the series from the chart element's data-chart
// attribute (JSON, written escaped by the server: no inline script) and draws it with the
// vendored uPlot. Labels go through uPlot's text nodes, never innerHTML.
(function () {
  "use strict";
  var COLOURS = ["#0b4f9c", "#a4161a", "#14632c", "#7a4a00", "#5a2d82", "#00606b", "#8a3b12", "#333333", "#6b6b00"];

  function draw(el) {
    var doc;
    try { doc = JSON.parse(el.getAttribute("data-chart")); } catch (e) { return; }
    if (!window.uPlot || !doc || !doc.x || !doc.x.length) { return; }
    var data = [doc.x];
    var series = [{ label: "time" }];
    doc.series.forEach(function (s, i) {
      data.push(s.values);
      series.push({ label: String(s.label), stroke: COLOURS[i % COLOURS.length], width: 2,
        value: function (u, v) { return v == null ? "-" : "$" + v.toFixed(6); } });
    });
    var width = Math.max(320, el.clientWidth || 800);
    el.setAttribute("data-drawn", "true");
    new window.uPlot({ width: width, height: 300, series: series,
      axes: [{}, { values: function (u, vals) { return vals.map(function (v) { return "$" + v; }); } }] }, data, el);
  }

  function start() { document.querySelectorAll("[data-chart]").forEach(draw); }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
