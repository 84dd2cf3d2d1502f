/* Funnel report charts (ECharts, full build: the "common" one has no funnel series). */
(function () {
  "use strict";
  var data = document.getElementById("funnel-data");
  if (!data || typeof echarts === "undefined") return;
  var chart = JSON.parse(data.textContent);
  var rtl = document.documentElement.dir === "rtl";
  var funnelEl = document.getElementById("funnel-chart");
  if (funnelEl && chart.stages.length) {
    var f = echarts.init(funnelEl, null, { renderer: "svg" });
    f.setOption({
      tooltip: { trigger: "item" },
      series: [{
        type: "funnel", name: chart.labels.entered, sort: "none", left: "10%", width: "80%",
        label: { position: "inside", formatter: "{b}: {c}" },
        data: chart.stages.map(function (s) { return { name: s.name, value: s.value, itemStyle: { color: s.color } }; })
      }]
    });
    window.addEventListener("resize", function () { f.resize(); });
  }
  var lossEl = document.getElementById("loss-chart");
  if (lossEl && chart.reasons.length) {
    var l = echarts.init(lossEl, null, { renderer: "svg" });
    l.setOption({
      tooltip: { trigger: "axis" },
      grid: { left: rtl ? 20 : 140, right: rtl ? 140 : 20, top: 10, bottom: 20 },
      xAxis: { type: "value", inverse: rtl, minInterval: 1 },
      yAxis: { type: "category", position: rtl ? "right" : "left", data: chart.reasons.map(function (r) { return r.name; }) },
      series: [{ type: "bar", barMaxWidth: 28, name: chart.labels.lost, data: chart.reasons.map(function (r) { return r.value; }), itemStyle: { color: "#d92d20" } }]
    });
    window.addEventListener("resize", function () { l.resize(); });
  }
})();
