// The viewer of the static map page written by cube.explore.page: an equirectangular world on a canvas with
// every patch coloured as cube.explore.model colours it, filters, a tooltip, and a patch's strip on click.
"use strict";

const MAP = CRTS_MAP, P = MAP.patches, N = P.roi.length;
const canvas = document.getElementById("canvas"), ctx = canvas.getContext("2d");
const $ = (id) => document.getElementById(id);
const view = { lon: 0, lat: 20, scale: 1 };  // centre and px per degree
let colours = [], shown = [], stripShown = null;

function hexRgb(hex) { return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)); }

// The same linear interpolation between the ramp's stops as cube.explore.model.ramp_colours.
function rampColour(value) {
  if (value === null || value === undefined) return hexRgb(MAP.missing);
  const stops = MAP.ramp.map(hexRgb), x = Math.min(Math.max(value, 0), 1) * (stops.length - 1);
  const low = Math.min(Math.floor(x), stops.length - 2), f = x - low;
  return stops[low].map((c, k) => Math.round(c + (stops[low + 1][k] - c) * f));
}

function currentValues() {
  const by = $("by").value, det = $("detector").value, month = +$("month").value;
  if (by === "split" || by === "region") return P[by];
  return by === "month" ? P.month[det][month - 1] : P[by][det];
}

function recolour() {
  const by = $("by").value, det = $("detector").value, month = +$("month").value, values = currentValues();
  const palette = MAP.categories[by];
  colours = values.map((v) => (palette ? hexRgb(palette[v]) : rampColour(v)));
  const key = palette ? by : by === "month" ? `month/${det}/${month}` : `${by}/${det}`;
  const [title, units] = MAP.units[key];
  let rows = palette
    ? Object.keys(palette).filter((k) => values.includes(k)).map((k) => [k, palette[k]])
    : [0, 0.25, 0.5, 0.75, 1].map((v) => [v.toFixed(2), "rgb(" + rampColour(v).join(",") + ")"]);
  if (!palette && values.some((v) => v === null)) rows.push(["no value", MAP.missing]);
  $("legend").innerHTML = `<b>${title}</b><br><i>${units}</i><br>` +
    rows.map(([label, c]) => `<span class="swatch" style="background:${c}"></span>${label}`).join("<br>");
  refilter();
}

function refilter() {
  const splits = [...document.querySelectorAll("#splits input:checked")].map((e) => e.value);
  const regions = [...document.querySelectorAll("#regions input:checked")].map((e) => e.value);
  const low = +$("low").value, high = +$("high").value, mean = P.coverage[$("detector").value];
  const all = low <= 0 && high >= 1;
  shown = [];
  for (let i = 0; i < N; i++) {
    if (!splits.includes(P.split[i]) || !regions.includes(P.region[i])) continue;
    if (!all && (mean[i] === null || mean[i] < low || mean[i] > high)) continue;
    shown.push(i);
  }
  $("count").textContent = `${shown.length} of ${N} patches shown`;
  draw();
}

function project(lon, lat) {
  return [canvas.width / 2 + (lon - view.lon) * view.scale, canvas.height / 2 - (lat - view.lat) * view.scale];
}

function centre(i) {
  let x = 0, y = 0;
  for (let k = 0; k < 4; k++) { x += P.outline[8 * i + 2 * k]; y += P.outline[8 * i + 2 * k + 1]; }
  return project(x / 4, y / 4);
}

function drawLand() {
  ctx.fillStyle = "#f4f1e8"; ctx.strokeStyle = "#999"; ctx.lineWidth = 0.7;
  for (const ring of CRTS_LAND.rings) {
    ctx.beginPath();
    ring.forEach(([lon, lat], k) => { const [x, y] = project(lon, lat); k ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
    ctx.closePath(); ctx.fill(); ctx.stroke();
  }
  ctx.strokeStyle = "rgba(0,0,0,0.15)";
  for (let g = -180; g <= 180; g += 30) { line(g, -90, g, 90); }
  for (let g = -90; g <= 90; g += 30) { line(-180, g, 180, g); }
}

function line(lon0, lat0, lon1, lat1) {
  const [x0, y0] = project(lon0, lat0), [x1, y1] = project(lon1, lat1);
  ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); ctx.stroke();
}

function draw() {
  canvas.width = canvas.clientWidth; canvas.height = canvas.clientHeight;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  drawLand();
  for (const i of shown) {
    ctx.fillStyle = `rgb(${colours[i].join(",")})`;
    const corners = [0, 1, 2, 3].map((k) => project(P.outline[8 * i + 2 * k], P.outline[8 * i + 2 * k + 1]));
    const w = Math.abs(corners[0][0] - corners[2][0]);
    if (w < 4) {  // smaller than a few px: a dot, so that every patch stays visible
      const [x, y] = centre(i); ctx.fillRect(x - 2, y - 2, 4, 4);
    } else {
      ctx.beginPath(); corners.forEach(([x, y], k) => (k ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.closePath(); ctx.fill();
    }
    if (i === stripShown) { const [x, y] = centre(i); ctx.strokeStyle = "#000"; ctx.strokeRect(x - 5, y - 5, 10, 10); }
  }
}

function nearest(px, py) {
  let best = -1, bestD = 36;  // within 6 px
  for (const i of shown) {
    const [x, y] = centre(i), d = (x - px) ** 2 + (y - py) ** 2;
    if (d < bestD) { best = i; bestD = d; }
  }
  return best;
}

function hover(i) {
  const det = $("detector").value, mean = P.coverage[det][i];
  return `${P.roi[i]} patch ${P.patch_id[i]} | ${P.split[i]} | ${P.region[i]} | mean coverage ` +
    `${mean === null ? "n/a" : (100 * mean).toFixed(0) + " %"} (${det})`;
}

function openStrip(i) {
  stripShown = i; draw();
  const old = document.getElementById("strip-script");
  if (old) old.remove();
  const script = document.createElement("script");
  script.id = "strip-script"; script.src = `strips/${i}.js`;
  document.body.appendChild(script);
}

function thumbStyle(patch, step, row, zoom) {
  const px = MAP.thumb_px * zoom;
  return `width:${px}px;height:${px}px;background-image:url(thumbs/${patch}.webp);` +
    `background-size:auto ${2 * px}px;background-position:-${step * px}px -${row * px}px`;
}

// Called by strips/<patch>.js.
function crtsStrip(strip) {
  $("panel").style.display = "block"; draw();
  $("title").textContent = strip.title;
  $("strip").innerHTML = strip.captions.map((caption, t) => {
    const role = t === strip.target ? "target" : strip.inputs.includes(t) ? "input" : "";
    const image = MAP.thumbnails ? `<div class="thumb" style="${thumbStyle(strip.patch, t, 0, 1)}"></div>` +
      `<div class="thumb" style="${thumbStyle(strip.patch, t, 1, 1)}"></div>` : "";
    return `<div class="step ${role}" data-step="${t}">${image}<div class="caption">${caption}</div></div>`;
  }).join("");
  document.querySelectorAll(".step").forEach((e) => e.addEventListener("click", () => large(strip, +e.dataset.step)));
  curve(strip);
}

function large(strip, t) {
  const image = MAP.thumbnails ? [0, 1].map((row) => `<div style="${thumbStyle(strip.patch, t, row, 4)}"></div>`) : [];
  $("large").innerHTML = `<p>step ${t}: S2 ${strip.s2_dates[t] || "no image"}, S1 ${strip.s1_dates[t] || "no image"}; ` +
    strip.detectors.map((d, k) => `${d} ${strip.coverage[k][t] === null ? "n/a" : (100 * strip.coverage[k][t]).toFixed(1) + " %"}`).join(", ") +
    `</p>` + image.join("");
}

// Coverage through the year, one line per detector, x: day of the year of the S2 date.
function curve(strip) {
  const svg = $("curve"), w = 600, h = 180, pad = 30, colours = ["#1f77b4", "#ff7f0e", "#2ca02c"];
  const day = (iso) => (Date.parse(iso) - Date.parse(iso.slice(0, 4) + "-01-01")) / 864e5;
  const x = (d) => pad + (d / 365) * (w - 2 * pad), y = (c) => h - pad - c * (h - 2 * pad);
  let out = `<line x1="${pad}" y1="${y(0)}" x2="${w - pad}" y2="${y(0)}" stroke="#999"/>` +
    `<line x1="${pad}" y1="${y(0)}" x2="${pad}" y2="${y(1)}" stroke="#999"/>` +
    `<text x="2" y="${y(1) + 4}">1</text><text x="2" y="${y(0) + 4}">0</text>` +
    `<text x="${pad}" y="${h - 6}">cloud coverage (fraction of pixels) through the year of the S2 dates</text>`;
  strip.detectors.forEach((d, k) => {
    const points = strip.s2_dates.map((iso, t) => (iso && strip.coverage[k][t] !== null ?
      `${x(day(iso)).toFixed(1)},${y(strip.coverage[k][t]).toFixed(1)}` : null)).filter((p) => p);
    out += `<polyline class="detector" fill="none" stroke="${colours[k % 3]}" points="${points.join(" ")}"/>` +
      `<text x="${w - 200}" y="${14 + 14 * k}" fill="${colours[k % 3]}">${d}</text>`;
  });
  svg.innerHTML = out;
}

function controls() {
  const option = (value, text) => `<option value="${value}">${text}</option>`;
  $("by").innerHTML = MAP.keys.map((k) => option(k, k)).join("");
  $("detector").innerHTML = MAP.detectors.map((d) => option(d, d)).join("");
  $("month").innerHTML = MAP.months.map((m, k) => option(k + 1, m)).join("");
  for (const key of ["split", "region"]) {
    $(key + "s").innerHTML += Object.keys(MAP.categories[key]).filter((v) => P[key].includes(v))
      .map((v) => `<label><input type="checkbox" value="${v}" checked>${v}</label>`).join(" ");
  }
  for (const id of ["by", "detector", "month"]) $(id).addEventListener("change", recolour);
  document.querySelectorAll("#bar input").forEach((e) => e.addEventListener("change", refilter));
}

function interaction() {
  let drag = null;
  canvas.addEventListener("mousedown", (e) => { drag = { x: e.offsetX, y: e.offsetY, moved: false }; });
  canvas.addEventListener("mouseup", (e) => {
    if (drag && !drag.moved) { const i = nearest(e.offsetX, e.offsetY); if (i >= 0) openStrip(i); }
    drag = null;
  });
  canvas.addEventListener("mousemove", (e) => {
    if (drag && (Math.abs(e.offsetX - drag.x) + Math.abs(e.offsetY - drag.y) > 3 || drag.moved)) {
      view.lon -= (e.offsetX - drag.x) / view.scale; view.lat += (e.offsetY - drag.y) / view.scale;
      drag = { x: e.offsetX, y: e.offsetY, moved: true }; draw(); return;
    }
    const i = nearest(e.offsetX, e.offsetY), tip = $("tooltip");
    tip.style.display = i >= 0 ? "block" : "none";
    if (i >= 0) { tip.textContent = hover(i); tip.style.left = e.offsetX + 12 + "px"; tip.style.top = e.offsetY + 12 + "px"; }
  });
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const f = e.deltaY < 0 ? 1.5 : 1 / 1.5, lon = view.lon + (e.offsetX - canvas.width / 2) / view.scale;
    const lat = view.lat - (e.offsetY - canvas.height / 2) / view.scale;
    view.scale = Math.min(Math.max(view.scale * f, 0.5), 1e5);
    view.lon = lon - (e.offsetX - canvas.width / 2) / view.scale; view.lat = lat + (e.offsetY - canvas.height / 2) / view.scale;
    draw();
  }, { passive: false });
  window.addEventListener("resize", draw);
}

// For scripted use (and the tests): where a patch is drawn, and moving the view.
window.crtsMap = {
  centre, colourOf: (i) => colours[i], shown: () => shown.slice(), rampColour,
  view: (lon, lat, scale) => { Object.assign(view, { lon, lat, scale }); draw(); },
};

controls();
interaction();
view.scale = Math.max(canvas.clientWidth / 360, 0.5);
recolour();
