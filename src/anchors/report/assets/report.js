// anchors report: sentence list, details panel, and links from plot clicks to sentences. No network, no eval;
// sentence texts are model output, so they only ever go into the page through textContent.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("anchors-data").textContent);
  var list = document.getElementById("sentence-list");
  var detail = document.getElementById("detail");
  var items = [];
  var selected = null;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  function fmt(v) {
    if (v === null || v === undefined || (typeof v === "number" && !isFinite(v))) return "NaN";
    return typeof v === "number" ? Number(v.toPrecision(4)).toString() : String(v);
  }
  function headline(s) { return data.headline ? s.metrics[data.headline] : null; }

  var maxAbs = 0;
  data.sentences.forEach(function (s) {
    var v = headline(s);
    if (v && v[0] !== null && isFinite(v[0])) maxAbs = Math.max(maxAbs, Math.abs(v[0]));
  });

  function buildItem(s) {
    var li = el("li");
    li.dataset.index = s.index;
    li.appendChild(el("span", "idx", String(s.index)));
    var chip = el("span", "chip");
    chip.style.background = data.tag_colors[s.tag] || data.untagged_color;
    chip.title = s.tag || "untagged";
    li.appendChild(chip);
    li.appendChild(el("span", "text", s.text));
    var bar = el("span", "val");
    var v = headline(s);
    if (!v || v[0] === null) { bar.classList.add("nan"); bar.title = "NaN / not computed"; }
    else {
      var fill = el("span");
      fill.style.width = (maxAbs > 0 ? Math.abs(v[0]) / maxAbs * 100 : 0) + "%";
      bar.appendChild(fill);
      bar.title = data.headline_label + ": " + fmt(v[0]);
    }
    li.appendChild(bar);
    li.addEventListener("mouseenter", function () { if (selected === null) show(s.index); });
    li.addEventListener("click", function () { select(s.index, false); });
    return li;
  }

  function show(index) {
    var s = data.sentences[data.position[index]];
    if (!s) return;
    detail.textContent = "";
    detail.appendChild(el("h2", null, "Sentence " + s.index + " · " + (s.tag || "untagged").replace(/_/g, " ")));
    detail.appendChild(el("p", null, s.text));
    if (s.tags && s.tags.length > 1) detail.appendChild(el("p", "tagline", "tags: " + s.tags.join(", ")));
    if (s.depends_on && s.depends_on.length) detail.appendChild(el("p", "tagline", "depends on: " + s.depends_on.join(", ")));
    var table = el("table");
    data.metrics.forEach(function (m) {
      var v = s.metrics[m];
      if (!v) return;
      var row = el("tr");
      row.appendChild(el("td", null, data.labels[m] || m));
      var text = fmt(v[0]);
      if (v[1] !== null && v[2] !== null && v[1] !== undefined) text += "  [" + fmt(v[1]) + ", " + fmt(v[2]) + "]";
      row.appendChild(el("td", null, text));
      table.appendChild(row);
    });
    detail.appendChild(table);
    var alts = data.alternatives[String(s.index)];
    if (alts && alts.length) {
      detail.appendChild(el("div", "tagline", "Resampled alternatives (first " + alts.length + "):"));
      var ul = el("ul", "alts");
      alts.forEach(function (a) { ul.appendChild(el("li", null, a)); });
      detail.appendChild(ul);
    }
  }

  function select(index, scroll) {
    if (selected !== null && items[data.position[selected]]) items[data.position[selected]].classList.remove("selected");
    selected = index;
    var li = items[data.position[index]];
    if (li) {
      li.classList.add("selected");
      if (scroll) li.scrollIntoView({ block: "nearest" });
    }
    show(index);
    plots.forEach(function (div) { if (div.dataset.rendered === "1") highlight(div, index); });
  }

  // The selected sentence in every plot that has a sentence axis: points (customdata[0] = sentence index) are
  // selected, matrix rows and columns and patching columns get a band, table rows a fill.
  var BAND = { type: "rect", line: { color: "#FF9500", width: 2 }, fillcolor: "rgba(255,149,0,0.10)", layer: "above" };
  function band(axis, index) {
    var shape = Object.assign({}, BAND, { name: "anchors-selection" });
    if (axis === "x") { Object.assign(shape, { xref: "x", yref: "paper", x0: index - 0.5, x1: index + 0.5, y0: 0, y1: 1 }); }
    else { Object.assign(shape, { xref: "paper", yref: "y", x0: 0, x1: 1, y0: index - 0.5, y1: index + 0.5 }); }
    return shape;
  }
  function highlight(div, index) {
    var kind = data.kind_of[div.id];
    if (!kind) return;
    if (kind === "sentence-matrix" || kind === "sentence-columns") {
      var shapes = [band("x", index)];
      if (kind === "sentence-matrix") shapes.push(band("y", index));
      Plotly.relayout(div, { shapes: shapes });
    } else if (kind === "sentence-table") {
      var colors = (data.table_rows[div.id] || []).map(function (row) { return row === index ? "#FFE7C2" : "white"; });
      Plotly.restyle(div, { "cells.fill.color": [colors] }, [0]);
    } else {
      var chosen = div.data.map(function (trace) {
        if (!trace.customdata) return null;
        var picked = [];
        trace.customdata.forEach(function (c, k) { if (c && c[0] === index) picked.push(k); });
        return picked;
      });
      Plotly.restyle(div, { selectedpoints: chosen });
    }
    div.dataset.selected = String(index);
  }

  function render() {
    var order = document.getElementById("sort").value;
    var tag = document.getElementById("tag-filter").value;
    var query = document.getElementById("search").value.toLowerCase();
    var rows = items.slice();
    if (order === "metric") {
      rows.sort(function (a, b) {
        var va = headline(data.sentences[data.position[a.dataset.index]]), vb = headline(data.sentences[data.position[b.dataset.index]]);
        return ((vb && vb[0] !== null) ? Math.abs(vb[0]) : -1) - ((va && va[0] !== null) ? Math.abs(va[0]) : -1);
      });
    }
    var fragment = document.createDocumentFragment();
    rows.forEach(function (li) {
      var s = data.sentences[data.position[li.dataset.index]];
      var visible = (!tag || (s.tag || "") === tag) && (!query || s.text.toLowerCase().indexOf(query) >= 0);
      li.style.display = visible ? "" : "none";
      fragment.appendChild(li);
    });
    list.appendChild(fragment);
  }

  function onPlotClick(div) {
    div.on("plotly_click", function (event) {
      var p = event && event.points && event.points[0];
      if (!p) return;
      var kind = data.kind_of[div.id];
      var index = (p.customdata && typeof p.customdata[0] === "number") ? p.customdata[0]
        : (kind === "sentence-matrix") ? p.y : (kind === "sentence-columns") ? p.x : null;
      if (index !== null && data.position[index] !== undefined) select(index, true);
    });
  }

  // Plots are drawn when they come near the viewport (one at a time), so a long report opens at once.
  function draw(div) {
    if (div.dataset.rendered) return Promise.resolve(div);
    div.dataset.rendered = "pending";
    var spec = JSON.parse(document.getElementById(div.dataset.spec).textContent);
    return Plotly.newPlot(div, spec.data, spec.layout, data.plot_config).then(function () {
      div.dataset.rendered = "1";
      onPlotClick(div);
      if (selected !== null) highlight(div, selected);
      return div;
    });
  }
  var plots = Array.prototype.slice.call(document.querySelectorAll(".plot[data-spec]"));
  function drawAll() { return Promise.all(plots.map(draw)); }
  if ("IntersectionObserver" in window) {
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (entry.isIntersecting) { observer.unobserve(entry.target); draw(entry.target); }
      });
    }, { rootMargin: "300px 0px" });
    plots.forEach(function (div) { observer.observe(div); });
  } else {
    drawAll();
  }
  window.addEventListener("beforeprint", drawAll);
  window.anchorsReport = { drawAll: drawAll, select: select };

  data.sentences.forEach(function (s) { items.push(buildItem(s)); });
  items.forEach(function (li) { list.appendChild(li); });
  ["sort", "tag-filter", "search"].forEach(function (id) {
    document.getElementById(id).addEventListener(id === "search" ? "input" : "change", render);
  });
  if (data.sentences.length) {
    var top = data.sentences.slice().sort(function (a, b) {
      var va = headline(a), vb = headline(b);
      return ((vb && vb[0] !== null) ? Math.abs(vb[0]) : -1) - ((va && va[0] !== null) ? Math.abs(va[0]) : -1);
    })[0];
    show(top.index);
  } else {
    detail.appendChild(el("p", "missing", "This trace has no sentences to show."));
  }
  document.body.dataset.ready = "1";
})();
