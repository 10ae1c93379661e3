// Live usage dashboard: renders the snapshots /dashboard/events streams.
// Client names and endpoints come from requests, so they only ever go into
// textContent, never into HTML.
(function () {
  "use strict";

  const POINTS = 60;
  const MAX_ENDPOINT_SERIES = 8;
  const PALETTE = ["#3b6fd8", "#1f9d8a", "#e0a526", "#d2553f", "#8a5cd1", "#4aa3df", "#7a8b2d", "#c2568f", "#9aa1ad"];
  const fmt = new Intl.NumberFormat();
  const $ = (id) => document.getElementById(id);

  let latest = null;
  let connected = false;

  const rateChart = new Chart($("rateChart"), {
    type: "line",
    data: {
      labels: Array.from({ length: POINTS }, (_, i) => (i === POINTS - 1 ? "now" : `-${POINTS - 1 - i}s`)),
      datasets: [{ label: "events/s", data: Array(POINTS).fill(null), borderColor: PALETTE[0],
        backgroundColor: "rgba(59,111,216,.12)", fill: true, tension: 0.25, pointRadius: 0, borderWidth: 2 }],
    },
    options: {
      animation: false, maintainAspectRatio: false,
      plugins: { legend: { display: false } },
      scales: { x: { ticks: { maxTicksLimit: 7, autoSkip: true } }, y: { beginAtZero: true, suggestedMax: 5 } },
    },
  });

  const topChart = new Chart($("topChart"), {
    type: "bar",
    data: { labels: [], datasets: [] },
    options: {
      indexAxis: "y", animation: false, maintainAspectRatio: false,
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
      scales: { x: { stacked: true, beginAtZero: true }, y: { stacked: true } },
    },
  });

  function setStatus(ok, text) {
    connected = ok;
    const el = $("status");
    el.textContent = text;
    el.className = "pill " + (ok ? "on" : "off");
  }

  function renderTopChart(top) {
    const totals = new Map();
    for (const c of top) for (const [ep, e] of Object.entries(c.endpoints)) totals.set(ep, (totals.get(ep) || 0) + e.count);
    const ranked = [...totals.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map((e) => e[0]);
    const shown = ranked.slice(0, MAX_ENDPOINT_SERIES);
    const series = shown.map((ep, i) => ({ label: ep, color: PALETTE[i], count: (c) => (c.endpoints[ep] || { count: 0 }).count }));
    if (ranked.length > shown.length) {
      const rest = new Set(ranked.slice(MAX_ENDPOINT_SERIES));
      series.push({ label: "other", color: PALETTE[PALETTE.length - 1],
        count: (c) => Object.entries(c.endpoints).reduce((n, [ep, e]) => n + (rest.has(ep) ? e.count : 0), 0) });
    }
    topChart.data.labels = top.map((c) => c.client);
    topChart.data.datasets = series.map((s) => ({ label: s.label, data: top.map(s.count), backgroundColor: s.color }));
    topChart.update();
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function renderTable(top) {
    const body = $("endpoints");
    const rows = [];
    for (const c of top) {
      const eps = Object.entries(c.endpoints).sort((a, b) => b[1].count - a[1].count || (a[0] < b[0] ? -1 : 1));
      eps.forEach(([ep, e], i) => {
        const tr = document.createElement("tr");
        if (i === 0) tr.className = "first";
        const count = cell(fmt.format(e.count), "num");
        count.dataset.client = c.client;
        count.dataset.endpoint = ep;
        count.dataset.count = String(e.count);
        tr.append(cell(i === 0 ? c.client : ""), cell(ep), count,
          cell(e.last_seen ? new Date(e.last_seen).toLocaleTimeString() : ""));
        rows.push(tr);
      });
    }
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      tr.append(cell("No usage recorded yet.", "empty"));
      tr.firstChild.colSpan = 4;
      rows.push(tr);
    }
    body.replaceChildren(...rows);
  }

  // Per-client time series from the windowed usage endpoints, refreshed
  // every SERIES_EVERY ms and when another client is picked.
  const SERIES_EVERY = 2000;
  const seriesCharts = [
    { fig: "minuteFig", chart: barChart("minuteChart", PALETTE[1]), step: "1m", stepMs: 60e3, buckets: 60, label: (d) => d.toISOString().slice(11, 16) },
    { fig: "hourFig", chart: barChart("hourChart", PALETTE[0]), step: "1h", stepMs: 3600e3, buckets: 24, label: (d) => d.toISOString().slice(11, 13) + "h" },
  ];

  function barChart(id, color) {
    return new Chart($(id), {
      type: "bar",
      data: { labels: [], datasets: [{ label: "calls", data: [], backgroundColor: color }] },
      options: { animation: false, maintainAspectRatio: false, plugins: { legend: { display: false } },
        scales: { x: { ticks: { maxTicksLimit: 12, autoSkip: true } }, y: { beginAtZero: true, suggestedMax: 5 } } },
    });
  }

  function updateClients(top) {
    const sel = $("seriesClient");
    const names = top.map((c) => c.client);
    const current = sel.value;
    if (current && !names.includes(current)) names.push(current); // keep the pick when it leaves the top
    const have = [...sel.options].map((o) => o.value);
    if (have.join("\n") === names.join("\n")) return;
    sel.replaceChildren(...names.map((n) => { const o = document.createElement("option"); o.value = n; o.textContent = n; return o; }));
    sel.value = current || names[0] || "";
    if (!current && sel.value) refreshSeries();
  }

  async function refreshSeries() {
    const client = $("seriesClient").value;
    if (!client) return;
    for (const sc of seriesCharts) {
      const now = Date.now();
      const first = Math.floor(now / sc.stepMs) * sc.stepMs - (sc.buckets - 1) * sc.stepMs;
      let body;
      try {
        const resp = await fetch(`/usage/${encodeURIComponent(client)}/series?step=${sc.step}&from=${new Date(first).toISOString()}&to=now`);
        body = await resp.json();
        if (!resp.ok) {
          $("seriesNote").textContent = body.detail || `series: ${resp.status}`;
          continue;
        }
      } catch (e) {
        continue;
      }
      $("seriesNote").textContent = "";
      const counts = Array(sc.buckets).fill(0);
      for (const b of body.buckets) {
        const i = Math.round((Date.parse(b.start) - first) / sc.stepMs);
        if (i >= 0 && i < sc.buckets) counts[i] = b.total;
      }
      sc.chart.data.labels = counts.map((_, i) => sc.label(new Date(first + i * sc.stepMs)));
      sc.chart.data.datasets[0].data = counts;
      sc.chart.update();
      const fig = $(sc.fig);
      fig.dataset.client = client;
      fig.dataset.total = String(counts.reduce((a, b) => a + b, 0));
    }
  }

  $("seriesClient").addEventListener("change", refreshSeries);
  setInterval(refreshSeries, SERIES_EVERY);

  // Endpoint panels, shown when the hub reads the endpoints table. The
  // latency chart follows the busiest endpoint, whose chart every snapshot
  // carries, until one is picked from a list; a picked one is read from the
  // hub (which caches it for all pages) at most every CHART_EVERY ms.
  const CHART_EVERY = 1000;
  const fmtMs = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  const fmtPct = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });
  let panel = null;
  let picked = ""; // "" follows the busiest endpoint
  let chartFetching = false;
  let chartFetchedAt = 0;
  let latencyChart = null; // made once the section is visible, so it sizes itself

  function latencyLines() {
    const lines = [["p50", PALETTE[1]], ["p95", PALETTE[2]], ["p99", PALETTE[3]]];
    return new Chart($("latencyChart"), {
      type: "line",
      data: { labels: [], datasets: lines.map(([label, color]) => ({ label, data: [], borderColor: color, backgroundColor: color,
        spanGaps: false, tension: 0.2, pointRadius: 2, borderWidth: 2 })) },
      options: { animation: false, maintainAspectRatio: false, plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
        scales: { x: { ticks: { maxTicksLimit: 12, autoSkip: true } }, y: { beginAtZero: true, suggestedMax: 5 } } },
    });
  }

  function fmtDuration(ms) {
    if (ms % 3600e3 === 0) return `${ms / 3600e3} h`;
    if (ms % 60e3 === 0) return `${ms / 60e3} min`;
    return `${ms / 1e3} s`;
  }

  function renderList(id, rows, value, shown) {
    const trs = rows.map((r) => {
      const tr = document.createElement("tr");
      const [text, raw] = value(r);
      tr.dataset.endpoint = r.endpoint;
      tr.dataset.value = String(raw);
      tr.dataset.calls = String(r.calls);
      if (r.endpoint === shown) tr.className = "picked";
      tr.append(cell(r.endpoint), cell(text, "num"), cell(fmt.format(r.calls), "num"));
      return tr;
    });
    if (trs.length === 0) {
      const tr = document.createElement("tr");
      tr.append(cell("No endpoint calls recorded yet.", "empty"));
      tr.firstChild.colSpan = 3;
      trs.push(tr);
    }
    $(id).replaceChildren(...trs);
  }

  function renderLatency(c) {
    if (!latencyChart) latencyChart = latencyLines();
    const from = Date.parse(c.from);
    const cols = Array.from({ length: c.buckets }, () => [null, null, null]); // no calls: a gap
    for (const p of c.points) {
      const i = Math.round((Date.parse(p.start) - from) / c.step_ms);
      if (i >= 0 && i < c.buckets) cols[i] = [p.p50, p.p95, p.p99];
    }
    const end = c.step_ms % 60e3 ? 19 : 16;
    latencyChart.data.labels = cols.map((_, i) => new Date(from + i * c.step_ms).toISOString().slice(11, end));
    latencyChart.data.datasets.forEach((d, q) => { d.data = cols.map((col) => col[q]); });
    latencyChart.update();
    $("latencyEndpoint").textContent = c.endpoint;
    $("latencySpan").textContent = `${fmtDuration(c.buckets * c.step_ms)}, per ${fmtDuration(c.step_ms)}`;
    const fig = $("latencyFig");
    const last = c.points[c.points.length - 1];
    fig.dataset.endpoint = c.endpoint;
    fig.dataset.points = String(c.points.length);
    fig.dataset.p99 = last ? String(last.p99) : "";
  }

  async function fetchChart(force) {
    const endpoint = picked;
    if (chartFetching || (!force && Date.now() - chartFetchedAt < CHART_EVERY)) return;
    chartFetching = true;
    chartFetchedAt = Date.now();
    try {
      const resp = await fetch(`/dashboard/endpoints/series?endpoint=${encodeURIComponent(endpoint)}`);
      const body = await resp.json();
      if (endpoint !== picked) return;
      if (!resp.ok) {
        $("epNote").textContent = body.detail || `latency: ${resp.status}`;
        return;
      }
      $("epNote").textContent = "";
      renderLatency(body);
    } catch (e) {
      // The next snapshot tries again.
    } finally {
      chartFetching = false;
      if (endpoint !== picked && picked !== "") fetchChart(true); // picked again meanwhile
    }
  }

  function renderServices(services) {
    const trs = (services || []).map((s) => {
      const tr = document.createElement("tr");
      tr.dataset.service = s.service;
      tr.dataset.calls = String(s.calls);
      // The service's clients, ranked by their calls to it (GET /usage?service=).
      const name = cell("");
      const link = document.createElement("a");
      link.href = "/usage?service=" + encodeURIComponent(s.service);
      link.title = "clients of " + s.service + ", by their calls to it";
      link.textContent = s.service;
      name.append(link);
      tr.append(name, cell(fmt.format(s.endpoints), "num"), cell(fmtPct.format(s.error_rate), "num"), cell(fmt.format(s.calls), "num"));
      return tr;
    });
    $("services").replaceChildren(...trs);
  }

  function renderEndpoints(p) {
    $("epSection").hidden = !p;
    panel = p || null;
    if (!p) return;
    renderServices(p.services);
    const shown = picked || p.busiest || "";
    renderList("epByP99", p.by_p99, (r) => [`${fmtMs.format(r.p99_ms)} ms`, r.p99_ms], shown);
    renderList("epByErrorRate", p.by_error_rate, (r) => [fmtPct.format(r.error_rate), r.error_rate], shown);
    $("epCount").textContent = `${fmt.format(p.endpoints)} in all`;
    $("latencyFig").hidden = !p.windowed;
    if (!p.windowed) return;
    if (!picked || picked === p.busiest) {
      if (p.chart) renderLatency(p.chart);
    } else {
      fetchChart(false);
    }
  }

  function pick(endpoint) {
    picked = endpoint;
    if (!panel) return;
    renderEndpoints(panel);
    if (panel.windowed && endpoint !== panel.busiest) fetchChart(true);
  }

  for (const id of ["epByP99", "epByErrorRate"]) {
    $(id).addEventListener("click", (ev) => {
      const tr = ev.target.closest("tr[data-endpoint]");
      if (tr) pick(tr.dataset.endpoint);
    });
  }

  // Active alerts, shown when the hub has them (even none: "No active alerts").
  function alertValue(a) {
    switch (a.kind) {
      case "client_usage": return `${fmt.format(a.value)} calls (${a.threshold} % of ${fmt.format(a.limit || 0)})`;
      case "endpoint_p99": return `p99 ${fmtMs.format(a.value)} ms ≥ ${a.threshold} ms`;
      default: return `${fmtMs.format(a.value)} % errors ≥ ${a.threshold} %`;
    }
  }

  function renderAlerts(list) {
    $("alertSection").hidden = !list;
    if (!list) return;
    const body = $("alerts");
    body.replaceChildren();
    $("alertCount").textContent = `${list.length} active`;
    if (list.length === 0) {
      const tr = document.createElement("tr");
      tr.appendChild(cell("No active alerts", "empty")).colSpan = 5;
      body.appendChild(tr);
      return;
    }
    for (const a of list) {
      const tr = document.createElement("tr");
      tr.dataset.alert = a.id;
      tr.append(cell(a.rule), cell(a.key), cell(a.window), cell(alertValue(a)), cell(new Date(a.fired_at).toLocaleTimeString()));
      body.appendChild(tr);
    }
  }

  function render(s) {
    $("rate").textContent = s.rate.toFixed(1);
    $("events").textContent = fmt.format(s.events);
    $("requests").textContent = fmt.format(s.requests);
    $("clients").textContent = fmt.format(s.clients);
    const data = rateChart.data.datasets[0].data;
    data[data.length - 1] = s.rate;
    rateChart.update();
    renderTopChart(s.top);
    renderTable(s.top);
    updateClients(s.top);
    renderEndpoints(s.endpoints);
    renderAlerts(s.alerts);
    setStatus(true, s.recovered ? "live" : "live · view recovering");
  }

  // The rate chart scrolls once a second whatever the event cadence.
  setInterval(() => {
    const data = rateChart.data.datasets[0].data;
    data.shift();
    data.push(connected && latest ? latest.rate : null);
    rateChart.update();
  }, 1000);

  const es = new EventSource("/dashboard/events");
  es.onmessage = (ev) => {
    latest = JSON.parse(ev.data);
    render(latest);
  };
  es.onopen = () => setStatus(true, "live");
  es.onerror = () => setStatus(false, "reconnecting…");
})();
