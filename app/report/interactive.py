"""The HTML report's one inline script: hover readout and step zoom on its line plots.

The page stays one offline file: no library, no URL. Each line plot's ``<figure>`` carries what
the SVG drew (``data-plot``: svgplot.drawn_data, the min/max-per-pixel-column points, never the
raw series) and a zoom group (``data-zoom``: the plots of one run, or the comparison).

- Hover: a readout of the step and each curve's value at its recorded point nearest the pointer
  (within 4 px the nearest in x and y, so a one-step spike in a pixel column can be read), or
  the NaN/Inf run under the pointer.
- Drag across a plot: every plot of its group shows that step range; double-click: all of it.

Without scripts the page shows the same static SVG as before (and as the PDF). The page's
Content-Security-Policy allows this script alone, by its hash (``SCRIPT_HASH``).
"""
from __future__ import annotations

import base64
import hashlib

SCRIPT = r"""
(function () {
  "use strict";
  var NONFINITE = "#d00000", SPAN = "#ffcc00", SNAP_PX = 4, MIN_DRAG_PX = 5, MAX_ROWS = 12;
  var NS = null;

  function el(tag, attrs, parent) {
    var node = document.createElementNS(NS, tag);
    for (var k in attrs) node.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(node);
    return node;
  }
  function num(v) { return String(Math.round(v * 100) / 100); }
  function fmtValue(v) {                       // svgplot.fmt_value, with 5 digits for a readout
    if (v !== v) return "NaN";
    if (!isFinite(v)) return v > 0 ? "inf" : "-inf";
    if (v === 0) return "0";
    var a = Math.abs(v);
    if (a >= 1e6 || a < 1e-3) {
      var p = v.toExponential(4).split("e");
      return p[0].replace(/\.?0+$/, "") + "e" + parseInt(p[1], 10);
    }
    return String(parseFloat(v.toPrecision(5)));
  }
  function fmtStep(v, tick) {                  // svgplot.fmt_step: 170000 -> "170,000", tick "170k"
    if (!isFinite(v) || v !== Math.round(v) || Math.abs(v) >= 1e15) return fmtValue(v);
    if (tick && Math.abs(v) >= 10000 && v % 1000 === 0) return (v / 1000).toLocaleString("en-US") + "k";
    return v.toLocaleString("en-US");
  }
  function niceTicks(lo, hi, n) {              // svgplot.nice_ticks
    if (!(isFinite(lo) && isFinite(hi))) return [];
    if (hi <= lo) return [lo];
    var raw = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(raw))), step = 10 * mag;
    var mults = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < mults.length; i++) if (mults[i] * mag >= raw) { step = mults[i] * mag; break; }
    var first = Math.ceil(lo / step - 1e-9), out = [];
    for (var k = first; k * step <= hi + step * 1e-9 && out.length < 50; k++) {
      var t = k * step;
      out.push(Math.abs(t) < step * 1e-9 ? 0 : parseFloat(t.toPrecision(12)));
    }
    return out;
  }
  function lowerBound(xs, v) { var lo = 0, hi = xs.length; while (lo < hi) { var m = (lo + hi) >> 1; if (xs[m] < v) lo = m + 1; else hi = m; } return lo; }
  function upperBound(xs, v) { var lo = 0, hi = xs.length; while (lo < hi) { var m = (lo + hi) >> 1; if (xs[m] <= v) lo = m + 1; else hi = m; } return lo; }
  function shorten(text, n) { return text.length <= n ? text : "\u2026" + text.slice(text.length - n + 1); }

  function Plot(fig, svg, d) {
    var self = this;
    this.svg = svg; this.d = d;
    this.left = d.frame[0]; this.top = d.frame[1]; this.pw = d.frame[2]; this.ph = d.frame[3];
    this.full = [d.x[0], d.x[1]]; this.view = this.full.slice();
    this.groups = Array.prototype.slice.call(svg.querySelectorAll("g[data-x]"));
    this.zoomed = [];
    this.flat = d.lines.map(function (ln) {
      var xs = [], ys = [];
      ln.pieces.forEach(function (p) { Array.prototype.push.apply(xs, p[0]); Array.prototype.push.apply(ys, p[1]); });
      return {x: xs, y: ys};
    });
    this.clipId = "ts-clip-" + Plot.count++;
    var defs = el("defs", {}, svg);
    var clip = el("clipPath", {id: this.clipId}, defs);
    el("rect", {x: this.left, y: this.top, width: this.pw, height: this.ph}, clip);
    this.hover = el("g", {"pointer-events": "none", display: "none"}, svg);
    this.sel = el("rect", {y: this.top, height: this.ph, fill: "#3366cc", "fill-opacity": "0.15",
                           stroke: "#3366cc", "stroke-opacity": "0.5", display: "none"}, svg);
    svg.style.cursor = "crosshair";
    svg.addEventListener("mousemove", function (ev) { self.move(ev); });
    svg.addEventListener("mouseleave", function () { self.hover.setAttribute("display", "none"); });
    svg.addEventListener("mousedown", function (ev) { self.press(ev); });
    svg.addEventListener("dblclick", function (ev) { ev.preventDefault(); Plot.zoomGroup(self.group, null); });
  }
  Plot.count = 0;
  Plot.groups = {};
  Plot.zoomGroup = function (key, range) {
    (Plot.groups[key] || []).forEach(function (p) { p.setView(range); });
  };

  Plot.prototype.point = function (ev) {
    var m = this.svg.getScreenCTM();
    if (!m) return null;
    var pt = this.svg.createSVGPoint();
    pt.x = ev.clientX; pt.y = ev.clientY;
    return pt.matrixTransform(m.inverse());
  };
  Plot.prototype.inside = function (p) {
    return p && p.x >= this.left && p.x <= this.left + this.pw && p.y >= this.top && p.y <= this.top + this.ph;
  };
  Plot.prototype.px = function (x) { return this.left + (x - this.view[0]) / (this.view[1] - this.view[0]) * this.pw; };
  Plot.prototype.xAt = function (sx) { return this.view[0] + (sx - this.left) / this.pw * (this.view[1] - this.view[0]); };
  Plot.prototype.py = function (y) {
    var v = this.d.log ? Math.log10(y) : y, y0 = this.d.y[0], y1 = this.d.y[1];
    return this.top + this.ph - (v - y0) / (y1 - y0) * this.ph;
  };

  // ---- zoom: the groups marked data-x are hidden and drawn again for the step range
  Plot.prototype.setView = function (range) {
    this.zoomed.forEach(function (n) { n.parentNode.removeChild(n); });
    this.zoomed = [];
    this.hover.setAttribute("display", "none");
    if (!range) {
      this.view = this.full.slice();
      this.groups.forEach(function (g) { g.removeAttribute("display"); });
      return;
    }
    this.view = [range[0], range[1]];
    var self = this;
    this.groups.forEach(function (g) {
      g.setAttribute("display", "none");
      var fresh = el("g", {}, null);
      self["draw_" + g.getAttribute("data-x")](fresh);
      g.parentNode.insertBefore(fresh, g.nextSibling);
      self.zoomed.push(fresh);
    });
  };
  Plot.prototype.draw_spans = function (g) {
    var v = this.view, self = this;
    this.d.spans.forEach(function (s) {
      if (s[1] < v[0] || s[0] > v[1]) return;
      var a = self.px(Math.max(s[0], v[0])), b = self.px(Math.min(s[1], v[1]));
      el("rect", {x: num(a - 1), y: self.top, width: num(Math.max(b - a, 0) + 2), height: self.ph,
                  fill: SPAN, "fill-opacity": "0.25"}, g);
    });
  };
  Plot.prototype.draw_ticks = function (g) {
    var self = this, bottom = this.top + this.ph;
    niceTicks(this.view[0], this.view[1], 6).forEach(function (t) {
      var x = num(self.px(t));
      el("line", {x1: x, y1: bottom, x2: x, y2: bottom + 4, stroke: "#666"}, g);
      el("text", {x: x, y: bottom + 15, "text-anchor": "middle", fill: "#444"}, g).textContent = fmtStep(t, true);
    });
    el("text", {x: this.left, y: bottom + 28, fill: "#3366cc"}, g).textContent =
      "zoomed: steps " + fmtStep(Math.round(this.view[0]), false) + "–" + fmtStep(Math.round(this.view[1]), false) +
      " (double-click for all)";
  };
  Plot.prototype.draw_data = function (g) {
    var self = this, v = this.view;
    var body = el("g", {"clip-path": "url(#" + this.clipId + ")"}, g);
    this.d.lines.forEach(function (ln) {
      ln.pieces.forEach(function (p) {
        var xs = p[0], ys = p[1];
        var a = Math.max(lowerBound(xs, v[0]) - 1, 0), b = Math.min(upperBound(xs, v[1]) + 1, xs.length);
        if (b <= a) return;
        if (b - a === 1) {
          if (xs[a] < v[0] || xs[a] > v[1]) return;
          el("circle", {cx: num(self.px(xs[a])), cy: num(self.py(ys[a])), r: "1.8", fill: ln.color}, body);
          return;
        }
        var parts = [];
        for (var i = a; i < b; i++) parts.push(num(self.px(xs[i])) + " " + num(self.py(ys[i])));
        el("path", {d: "M" + parts.join(" L"), fill: "none", stroke: ln.color, "stroke-width": ln.width,
                    "stroke-opacity": ln.opacity, "stroke-linejoin": "round"}, body);
      });
    });
    var first = null;
    this.d.lines.forEach(function (ln) {
      ln.bad.forEach(function (r) {
        if (r[1] < v[0] || r[0] > v[1]) return;
        var a = self.px(Math.max(r[0], v[0])), b = self.px(Math.min(r[1], v[1]));
        el("rect", {x: num(a - 1), y: self.top, width: num(Math.max(b - a, 0) + 2), height: 7, fill: NONFINITE}, g);
        first = first === null ? Math.max(r[0], v[0]) : Math.min(first, Math.max(r[0], v[0]));
      });
    });
    if (first !== null) {
      var lx = this.px(first), start = lx < this.left + this.pw * 0.7;
      el("text", {x: num(Math.min(lx + 4, this.left + this.pw - 4)), y: this.top + 18, fill: NONFINITE,
                  "text-anchor": start ? "start" : "end"}, g).textContent = "NaN/Inf from step " + fmtStep(first, false);
    }
    this.d.vlines.forEach(function (vl) {
      if (vl[0] < v[0] || vl[0] > v[1]) return;
      var x = num(self.px(vl[0]));
      el("line", {x1: x, y1: self.top, x2: x, y2: self.top + self.ph, stroke: "#555", "stroke-dasharray": "4 3"}, g);
      if (vl[1]) el("text", {x: num(self.px(vl[0]) + 3), y: self.top + 11, fill: "#555"}, g).textContent = vl[1];
    });
    this.d.markers.forEach(function (m) {
      if (m[0] < v[0] || m[0] > v[1] || (self.d.log && m[1] <= 0)) return;
      var cy = Math.min(Math.max(self.py(m[1]), self.top), self.top + self.ph);
      el("circle", {cx: num(self.px(m[0])), cy: num(cy), r: "5", fill: "none", stroke: NONFINITE,
                    "stroke-width": "1.6"}, g);
    });
  };

  // ---- hover: each curve's recorded point nearest the pointer
  Plot.prototype.snap = function (i, p) {
    var ln = this.d.lines[i], f = this.flat[i], v = this.view;
    var tol = SNAP_PX * (v[1] - v[0]) / this.pw, xc = this.xAt(p.x);
    for (var r = 0; r < ln.bad.length; r++) {
      var run = ln.bad[r];
      if (run[0] - tol <= xc && xc <= run[1] + tol && run[1] >= v[0] && run[0] <= v[1]) return {bad: run, x: Math.min(Math.max(xc, run[0]), run[1])};
    }
    var xs = f.x, lo = lowerBound(xs, Math.max(xc - tol, v[0])), hi = upperBound(xs, Math.min(xc + tol, v[1]));
    var best = -1, bestD = Infinity, k;
    for (k = lo; k < hi; k++) {
      var dx = this.px(xs[k]) - p.x, dy = this.py(f.y[k]) - p.y, dd = dx * dx + dy * dy;
      if (dd < bestD) { bestD = dd; best = k; }
    }
    if (best < 0) {                              // nothing within 4 px: the nearest point in x
      k = lowerBound(xs, xc);
      var cands = [k - 1, k].filter(function (j) { return j >= 0 && j < xs.length && xs[j] >= v[0] && xs[j] <= v[1]; });
      cands.forEach(function (j) { var dx = Math.abs(xs[j] - xc); if (dx < bestD) { bestD = dx; best = j; } });
    }
    return best < 0 ? null : {x: xs[best], y: f.y[best]};
  };
  Plot.prototype.move = function (ev) {
    var p = this.point(ev);
    if (this.drag) {
      var x = Math.min(Math.max(p.x, this.left), this.left + this.pw);
      this.sel.setAttribute("x", num(Math.min(x, this.drag)));
      this.sel.setAttribute("width", num(Math.abs(x - this.drag)));
    }
    if (!this.inside(p)) { this.hover.setAttribute("display", "none"); return; }
    var self = this, rows = [], lead = null, leadD = Infinity;
    this.d.lines.forEach(function (ln, i) {
      var s = self.snap(i, p);
      if (!s) return;
      var sx = self.px(s.x), sy = s.bad ? self.top + 3.5 : self.py(s.y);
      var dd = (sx - p.x) * (sx - p.x) + (sy - p.y) * (sy - p.y);
      rows.push({ln: ln, s: s, sx: sx, sy: sy});
      if (dd < leadD) { leadD = dd; lead = rows[rows.length - 1]; }
    });
    var h = this.hover;
    while (h.firstChild) h.removeChild(h.firstChild);
    if (!rows.length) { h.setAttribute("display", "none"); return; }
    h.removeAttribute("display");
    var step = lead.s.bad ? null : lead.s.x;
    el("line", {x1: num(lead.sx), y1: this.top, x2: num(lead.sx), y2: this.top + this.ph, stroke: "#888",
                "stroke-dasharray": "2 2"}, h);
    rows.forEach(function (r) {
      if (r.sy >= self.top - 1 && r.sy <= self.top + self.ph + 1)
        el("circle", {cx: num(r.sx), cy: num(r.sy), r: "3.5", fill: "#fff", stroke: r.s.bad ? NONFINITE : r.ln.color,
                      "stroke-width": "2"}, h);
    });
    var box = el("g", {}, h), texts = [];
    var head = step === null ? "NaN/Inf" : "step " + fmtStep(step, false);
    texts.push([head, null]);
    // top to bottom as the curves lie (NaN first); as many rows as the picture has room for
    rows.sort(function (a, b) { return a.sy - b.sy; });
    var room = Math.max(1, Math.floor((this.svg.viewBox.baseVal.height - this.top - 14) / 14) - 2);
    var shown = rows.length > Math.min(MAX_ROWS, room) ? Math.min(MAX_ROWS, room) - 1 : rows.length;
    rows.slice(0, shown).forEach(function (r) {
      var name = shorten(r.ln.label || self.d.title || "value", 28), s = r.s, text;
      if (s.bad) {
        text = name + ": " + s.bad[2] + (s.bad[0] === s.bad[1] ? " at step " + fmtStep(s.bad[0], false)
               : " at steps " + fmtStep(s.bad[0], false) + "\u2013" + fmtStep(s.bad[1], false));
      } else {
        text = name + ": " + fmtValue(s.y) + (s.x !== step ? "  (step " + fmtStep(s.x, false) + ")" : "");
      }
      texts.push([text, s.bad ? NONFINITE : r.ln.color]);
    });
    if (rows.length > shown) texts.push(["\u2026 " + (rows.length - shown) + " more", null]);
    var bg = el("rect", {fill: "#fff", "fill-opacity": "0.93", stroke: "#999", rx: "3"}, box), width = 0;
    texts.forEach(function (t, i) {
      var y = 14 + 14 * i;
      if (t[1]) el("rect", {x: 6, y: y - 8, width: 8, height: 8, fill: t[1]}, box);
      var node = el("text", {x: t[1] ? 18 : 6, y: y, fill: "#222", "font-weight": i ? "normal" : "bold"}, box);
      node.textContent = t[0];
      width = Math.max(width, (t[1] ? 18 : 6) + node.getComputedTextLength());
    });
    var bw = width + 8, bh = 14 * texts.length + 6, svgW = this.left + this.pw;
    bg.setAttribute("width", num(bw)); bg.setAttribute("height", num(bh));
    var bx = lead.sx + 12 + bw > svgW ? lead.sx - 12 - bw : lead.sx + 12;
    box.setAttribute("transform", "translate(" + num(Math.max(bx, 0)) + " " + num(this.top + 4) + ")");
  };
  Plot.prototype.press = function (ev) {
    var p = this.point(ev);
    if (ev.button !== 0 || !this.inside(p)) return;
    ev.preventDefault();
    var self = this;
    this.drag = p.x;
    this.sel.setAttribute("x", num(p.x)); this.sel.setAttribute("width", "0");
    this.sel.removeAttribute("display");
    function release(up) {
      window.removeEventListener("mouseup", release);
      var q = self.point(up), start = self.drag;
      self.drag = null;
      self.sel.setAttribute("display", "none");
      var x = Math.min(Math.max(q.x, self.left), self.left + self.pw);
      if (Math.abs(x - start) < MIN_DRAG_PX) return;
      var a = self.xAt(Math.min(x, start)), b = self.xAt(Math.max(x, start));
      if (b - a < 2) { var c = (a + b) / 2; a = c - 1; b = c + 1; }   // steps: no narrower than 2
      Plot.zoomGroup(self.group, [a, b]);
    }
    window.addEventListener("mouseup", release);
  };

  var figures = document.querySelectorAll("figure[data-plot]");
  for (var i = 0; i < figures.length; i++) {
    var fig = figures[i], svg = fig.querySelector("svg");
    if (!svg) continue;
    NS = svg.namespaceURI;
    var plot;
    try { plot = new Plot(fig, svg, JSON.parse(fig.getAttribute("data-plot"))); } catch (err) { continue; }
    plot.group = fig.getAttribute("data-zoom") || ("plot-" + i);
    (Plot.groups[plot.group] = Plot.groups[plot.group] || []).push(plot);
  }
  var hint = document.getElementById("plot-hint");
  if (hint && figures.length) hint.removeAttribute("hidden");
})();
"""

SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
