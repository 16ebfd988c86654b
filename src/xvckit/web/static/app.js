// The xvckit dashboard: signs in with a key kept in this tab (sessionStorage), reads each
// panel's JSON from /ui/api with it, draws the charts with plotly. Text from the server is
// only ever set as text (never as HTML).
"use strict";

const KEY = "xvckit.dashboard.key";
const state = { key: sessionStorage.getItem(KEY), me: null, tab: "overview" };
const $ = (id) => document.getElementById(id);
const PLOT_CONFIG = { responsive: true, displaylogo: false };

async function call(panel, params = {}) {
  const query = new URLSearchParams(params).toString();
  const answer = await fetch(`/ui/api/${panel}${query ? "?" + query : ""}`, {
    headers: { Authorization: `Bearer ${state.key}` },
  });
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok) {
    const error = new Error((body.error && body.error.message) || `HTTP ${answer.status}`);
    error.status = answer.status;
    throw error;
  }
  return body;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function format(value, unit) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "string") return value;
  switch (unit) {
    case "share": return `${(value * 100).toFixed(1)}%`;
    case "usd": return `$${value.toLocaleString(undefined, { maximumFractionDigits: value < 1 ? 4 : 2 })}`;
    case "ms": return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${Math.round(value)} ms`;
    case "count": return Math.round(value).toLocaleString();
    case "per day": return `${value.toFixed(2)}/day`;
    case "hours": return `${value.toFixed(1)} h`;
    default: return value.toFixed(2);
  }
}

function windowText(section, window) {
  const since = new Date(window.since * 1000).toISOString().slice(0, 16).replace("T", " ");
  const until = new Date(window.until * 1000).toISOString().slice(0, 16).replace("T", " ");
  const span = window.span === 3600 ? "hour" : "day";
  section.querySelector(".window").textContent = `${since} to ${until} UTC, by ${span}`;
}

function spark(values) {
  const points = values.map((v, i) => [i, v]).filter(([, v]) => v !== null);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 100 20");
  svg.setAttribute("preserveAspectRatio", "none");
  if (points.length < 2) return svg;
  const ys = points.map(([, v]) => v);
  const low = Math.min(...ys);
  const high = Math.max(...ys);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  const n = Math.max(values.length - 1, 1);
  line.setAttribute(
    "points",
    points.map(([i, v]) => `${(i / n) * 100},${high === low ? 10 : 19 - ((v - low) / (high - low)) * 18}`).join(" "),
  );
  svg.appendChild(line);
  return svg;
}

function card(item) {
  const node = el("div", null, "card");
  node.dataset.id = item.id;
  node.appendChild(el("h3", item.name));
  node.appendChild(el("div", format(item.value, item.unit), "value"));
  const arrow = { up: "▲", down: "▼", flat: "=" }[item.trend] || "";
  const delta = el("div", `${arrow} previous ${format(item.previous, item.unit)}`, "delta");
  if (item.assessment === "better" || item.assessment === "worse") delta.classList.add(item.assessment);
  node.appendChild(delta);
  if (item.spark && item.spark.length) node.appendChild(spark(item.spark));
  return node;
}

function plot(id, title, traces, layout = {}) {
  const node = $(id);
  const shown = traces.filter((t) => (t.y || t.x || []).some((v) => v !== null && v !== undefined));
  node.dataset.traces = String(shown.length);
  Plotly.react(
    node,
    shown,
    {
      title: { text: title, font: { size: 14 } },
      margin: { l: 55, r: layout.yaxis2 ? 55 : 15, t: 40, b: 40 },
      height: 300,
      legend: { orientation: "h", y: -0.2 },
      hovermode: "x unified",
      annotations: shown.length ? [] : [{ text: "no data in this range", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }],
      ...layout,
    },
    PLOT_CONFIG,
  );
}

function dates(ms) {
  return ms.map((t) => new Date(t));
}

function line(x, y, name, extra = {}) {
  return { x, y, name, type: "scatter", mode: "lines+markers", marker: { size: 4 }, connectgaps: false, ...extra };
}

function bars(rows, title, id) {
  plot(id, title, [{ type: "bar", orientation: "h", x: rows.map((r) => r.cost_usd), y: rows.map((r) => r.name), name: "USD" }], {
    yaxis: { automargin: true, autorange: "reversed" },
    hovermode: "closest",
  });
}

const PANELS = {
  async overview(section, params) {
    const data = await call("overview", params);
    windowText(section, data.window);
    const cards = $("cards");
    cards.replaceChildren(...data.cards.map(card));
  },

  async api(section, params) {
    const data = await call("api", params);
    windowText(section, data.window);
    const x = dates(data.times);
    plot("chart-latency", "Latency percentiles (ms)", Object.entries(data.latency_ms).map(([q, y]) => line(x, y, q)));
    plot("chart-ttft", "Time to first token (ms)", Object.entries(data.ttft_ms).map(([q, y]) => line(x, y, q)));
    plot(
      "chart-errors",
      "Requests and errors by type",
      [
        line(x, data.requests, "requests", { yaxis: "y2" }),
        ...Object.entries(data.errors).map(([kind, y]) => ({ x, y, name: kind, type: "bar" })),
      ],
      { barmode: "stack", yaxis2: { overlaying: "y", side: "right", showgrid: false }, yaxis: { title: { text: "errors" } } },
    );
    plot("chart-pacing", "Pacing: calls that waited, and seconds waited", [
      { x, y: data.pacing.waits, name: "calls waited", type: "bar" },
      line(x, data.pacing.wait_s, "seconds waited", { yaxis: "y2" }),
    ], { yaxis2: { overlaying: "y", side: "right", showgrid: false } });
    plot("chart-cache", "Response cache: hits and USD saved", [
      { x, y: data.cache.hits, name: "hits", type: "bar" },
      line(x, data.cache.saved_usd, "USD saved", { yaxis: "y2" }),
    ], { yaxis2: { overlaying: "y", side: "right", showgrid: false } });
    const team = $("chart-spend-team");
    team.hidden = !data.spend.team;
    if (data.spend.team) bars(data.spend.team, "Spend by team (USD)", "chart-spend-team");
    bars(data.spend.key, "Spend by key (USD)", "chart-spend-key");
    bars(data.spend.model, "Spend by model (USD)", "chart-spend-model");
  },

  async delivery(section) {
    const data = await call("delivery");
    const note = $("delivery-note");
    const list = $("delivery-kpis");
    list.replaceChildren();
    note.textContent = data.problem || "";
    if (!data.available) {
      section.querySelector(".window").textContent = "";
      $("chart-velocity").hidden = true;
      return;
    }
    section.querySelector(".window").textContent =
      `${data.period.since} to ${data.period.until} against the ${data.period.days} days before; measured ${data.generated_at}`;
    for (const [category, kpis] of Object.entries(data.categories)) {
      list.appendChild(el("h2", category));
      const cards = el("div", null, "cards");
      cards.replaceChildren(...kpis.map((kpi) => {
        const node = card(kpi);
        if (kpi.value === null && kpi.note) node.appendChild(el("div", kpi.note, "delta"));
        return node;
      }));
      list.appendChild(cards);
    }
    const rates = (data.categories.velocity || []).filter((k) => k.unit === "per day");
    const chart = $("chart-velocity");
    chart.hidden = false;
    plot("chart-velocity", "Velocity per day: this period and the one before", [
      { type: "bar", name: "previous", x: rates.map((k) => k.name), y: rates.map((k) => k.previous) },
      { type: "bar", name: "this period", x: rates.map((k) => k.name), y: rates.map((k) => k.value) },
    ], { barmode: "group", hovermode: "closest" });
  },

  async infrastructure(section, params) {
    const data = await call("infrastructure", { range: params.range });
    windowText(section, data.window);
    const x = dates(data.times);
    const hosts = (series, suffix = "") =>
      Object.entries(data.compute[series] || {}).map(([host, y]) => line(x, y, host + suffix));
    plot("chart-cpu", "CPU busy (%)", hosts("cpu_percent"));
    plot("chart-memory", "Memory in use (%)", hosts("memory_percent"));
    plot("chart-disk", "Disk I/O (bytes/s)", [...hosts("disk_read_bytes_s", " read"), ...hosts("disk_write_bytes_s", " write")]);
    plot("chart-network", "Network (bytes/s)", [...hosts("net_recv_bytes_s", " in"), ...hosts("net_sent_bytes_s", " out")]);
    plot("chart-probe", "Provider probe: connect to first byte (ms)", data.providers.map((p) => line(x, p.probe_ms, p.name)));
    plot("chart-reachable", "Provider reachable (share of probes)", data.providers.map((p) => line(x, p.up, p.name)), {
      yaxis: { range: [0, 1.05], tickformat: ".0%" },
    });
    $("providers").tBodies[0].replaceChildren(...data.providers.map((p) => {
      const row = el("tr");
      row.append(el("td", p.name), el("td", format(p.availability, "share"), "number"), el("td", p.probes, "number"));
      return row;
    }));
    $("doctor").tBodies[0].replaceChildren(...data.doctor.slice().reverse().map((run) => {
      const row = el("tr");
      row.append(
        el("td", new Date(run.at).toISOString().slice(0, 16).replace("T", " ")),
        el("td", run.host),
        el("td", run.band || "–"),
        el("td", run.bottleneck || "–"),
        el("td", format(run.checks_met_share, "share"), "number"),
      );
      return row;
    }));
  },
};

async function show(tab) {
  state.tab = tab;
  for (const button of document.querySelectorAll("#tabs button")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === tab));
  }
  for (const section of document.querySelectorAll("section.panel")) section.hidden = section.id !== tab;
  const section = $(tab);
  const params = { range: $("range").value };
  if ($("team").value) params.team = $("team").value;
  section.dataset.state = "loading";
  try {
    await PANELS[tab](section, params);
    section.dataset.state = "ready";
  } catch (error) {
    section.dataset.state = "error";
    section.dataset.error = error.message;
    if (error.status === 401) signOut(error.message);
  }
}

function signedIn(me) {
  state.me = me;
  $("signin").hidden = true;
  $("tabs").hidden = false;
  $("controls").hidden = false;
  $("who").textContent = `${me.key} (${me.role}${me.team ? ", " + me.team.name : ""})`;
  const team = $("team");
  const options = me.role === "admin" ? [["", "all teams"]] : [];
  team.replaceChildren(...options.concat(me.teams.map((t) => [t.id, t.name])).map(([value, text]) => {
    const option = el("option", text);
    option.value = value;
    return option;
  }));
  team.disabled = me.role !== "admin";
  show(state.tab);
}

function signOut(message) {
  sessionStorage.removeItem(KEY);
  state.key = null;
  $("signin").hidden = false;
  $("tabs").hidden = true;
  $("controls").hidden = true;
  for (const section of document.querySelectorAll("section.panel")) section.hidden = true;
  $("signin-error").textContent = message || "";
}

async function signIn(event) {
  event.preventDefault();
  state.key = $("key").value.trim();
  $("key").value = "";
  try {
    const me = await call("me");
    sessionStorage.setItem(KEY, state.key);
    $("signin-error").textContent = "";
    signedIn(me);
  } catch (error) {
    signOut(error.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin").addEventListener("submit", signIn);
  $("signout").addEventListener("click", () => signOut(""));
  for (const button of document.querySelectorAll("#tabs button")) {
    button.addEventListener("click", () => show(button.dataset.tab));
  }
  $("range").addEventListener("change", () => show(state.tab));
  $("team").addEventListener("change", () => show(state.tab));
  if (state.key) call("me").then(signedIn, (error) => signOut(error.message));
});
