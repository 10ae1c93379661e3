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
