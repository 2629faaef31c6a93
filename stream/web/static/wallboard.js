/* kpi-stream wallboard: polls /api/kpis (the ticket and contact-centre boards) or, at
   /agents, /api/agents (the agents view) every second and shows it.
   Data is written with textContent / createElement only, never as markup. */
(() => {
  "use strict";

  const POLL_INTERVAL_MS = 1000;
  const FETCH_TIMEOUT_MS = 1500;
  const TICK_MS = 250;
  const STALE_NO_ANSWER_MS = 5000;
  const STALE_AS_OF_AGE_MS = 10000;
  const WINDOWS = ["15m", "1h", "today"];
  const DEFAULT_WINDOW = "1h";
  const AWAITING_STATES = ["ok", "at_risk", "breached"];
  const KPI_FORMATS = {
    first_response_time_average_seconds: formatDuration,
    first_response_sla_attainment_ratio: formatPercent,
    resolution_time_average_seconds: formatDuration,
    resolution_sla_attainment_ratio: formatPercent,
    csat_ratio: formatPercent,
    nps_score: formatSigned,
  };
  const QUEUE_COLUMNS = [
    "first_response_time_average_seconds",
    "first_response_sla_attainment_ratio",
    "resolution_time_average_seconds",
    "csat_ratio",
    "nps_score",
  ];
  // The count each KPI rests on (a field of the same row of /api/kpis).
  const BASIS_OF = {
    first_response_time_average_seconds: "first_responses",
    first_response_sla_attainment_ratio: "first_responses",
    resolution_time_average_seconds: "resolutions",
    resolution_sla_attainment_ratio: "resolutions",
    csat_ratio: "csat_responses",
    nps_score: "nps_responses",
  };
  const BASIS_LABELS = {
    first_responses: "replies",
    resolutions: "resolved",
    csat_responses: "responses",
    nps_responses: "responses",
  };
  const BOARDS = ["tickets", "contacts"]; // the boards of `/`, picked by #board=
  const DEFAULT_BOARD = "tickets";
  const AGENTS_PATH = "/agents";
  const CONTACT_FORMATS = {
    contact_service_level_ratio: formatPercent,
    contact_abandonment_ratio: formatPercentUp,
    occupancy_ratio: formatPercentUp,
    contact_answer_time_average_seconds: formatDuration,
    contact_handle_time_average_seconds: formatDuration,
  };
  const CONTACT_QUEUE_COLUMNS = [
    "contact_service_level_ratio",
    "contact_abandonment_ratio",
    "contact_answer_time_average_seconds",
    "contact_handle_time_average_seconds",
  ];
  // The count each contact KPI rests on, and how the board names it.
  const CONTACT_BASIS = {
    contact_service_level_ratio: ["contacts_offered", "offered"],
    contact_abandonment_ratio: ["contacts_offered", "offered"],
    contact_answer_time_average_seconds: ["contacts_answered", "answered"],
    contact_handle_time_average_seconds: ["contacts_handled", "handled"],
  };
  const CONTACT_BASIS_OF = Object.fromEntries(
    Object.entries(CONTACT_BASIS).map(([key, [field]]) => [key, field]),
  );
  const LONGEST_WAIT = "contact_longest_wait_seconds"; // its levels in /api/kpis thresholds
  const AGENT_STATUSES = ["available", "busy", "after_contact_work", "away", "offline"];
  const STATUS_NAMES = {
    available: "Available",
    busy: "Busy",
    after_contact_work: "Wrap-up",
    away: "Away",
    offline: "Offline",
  };
  // The agents view's columns: [id in the URL (#sort=), heading, field of /api/agents,
  // format, the count a KPI rests on]. `agent`, `team`, `status`, `in_status` are the
  // agent's own; the rest are of the chosen window.
  const AGENT_COLUMNS = [
    ["agent", "Agent", "agent"],
    ["team", "Team", "team"],
    ["status", "Status", "status"],
    ["in_status", "In status", "in_status"],
    ["handled", "Handled", "contacts_handled", formatCount],
    ["aht", "AHT", "handle_time_average_seconds", formatDuration, "contacts_handled"],
    ["occupancy", "Occupancy", "occupancy_ratio", formatPercentUp],
    ["frt", "FRT", "first_response_time_average_seconds", formatDuration, "first_responses"],
    ["frt_sla", "FRT SLA", "first_response_sla_attainment_ratio", formatPercent, "first_responses"],
    ["resolved", "Resolved", "resolutions", formatCount],
    ["resolution", "Res. time", "resolution_time_average_seconds", formatDuration, "resolutions"],
    ["one_touch", "1-touch", "one_touch_resolution_ratio", formatPercent, "resolutions"],
    ["reopened", "Reopened", "reopened_resolution_ratio", formatPercentUp, "resolutions"],
    ["csat", "CSAT", "csat_ratio", formatPercent, "csat_responses"],
    ["nps", "NPS", "nps_score", formatSigned, "nps_responses"],
  ];
  const AGENT_SORTS = AGENT_COLUMNS.map(([id]) => id);
  // #columns=contacts or tickets: the agent's own columns and only that set, fewer and so
  // bigger on a TV; anything else shows every column.
  const COLUMN_SETS = {
    contacts: ["handled", "aht", "occupancy"],
    tickets: ["frt", "frt_sla", "resolved", "resolution", "one_touch", "reopened", "csat", "nps"],
  };
  const AGENT_BASIS_OF = Object.fromEntries(
    AGENT_COLUMNS.filter((c) => c[4]).map(([, , field, , basis]) => [field, basis]),
  );
  const DEFAULT_SORT = "status";
  const DIRECTIONS = ["asc", "desc"];
  const DEFAULT_ROTATE_S = 10;
  const STALE_REASONS = {
    broker_unreachable: "worker cannot reach Kafka",
    no_progress: "worker is not processing events",
    unknown: "worker reports its data is stale",
  };
  const DASH = "\u2014";
  const MINUS = "\u2212";

  const state = {
    data: null, // last good /api/kpis body
    receivedAt: 0, // performance.now() when it arrived
    lastAnswerAt: performance.now(), // last good answer, or page start
    lastAnswerWall: new Date(),
    window: hashParameter("window", WINDOWS, DEFAULT_WINDOW),
    board: window.location.pathname === AGENTS_PATH
      ? "agents"
      : hashParameter("board", BOARDS, DEFAULT_BOARD),
    queue: "", // `/`: the one queue shown (#queue=), "" for all
    sort: DEFAULT_SORT, // agents view: column id, direction, team filter, page
    direction: "asc",
    team: "",
    columns: "",
    rotateMs: DEFAULT_ROTATE_S * 1000,
    page: 0,
    pages: 1,
  };
  const API_URL = state.board === "agents" ? "/api/agents" : "/api/kpis";

  const $ = (selector) => document.querySelector(selector);
  const $$ = (selector) => Array.from(document.querySelectorAll(selector));

  // ---- formatting -------------------------------------------------------
  // Formatters return [number, unit] parts; units are drawn smaller.

  function formatDuration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return [[s, "s"]];
    if (s < 3600) return [[Math.floor(s / 60), "m"], [s % 60, "s"]];
    if (s < 86400) return [[Math.floor(s / 3600), "h"], [Math.floor((s % 3600) / 60), "m"]];
    return [[Math.floor(s / 86400), "d"], [Math.floor((s % 86400) / 3600), "h"]];
  }

  /** A good-when-high ratio to one decimal, rounded down: 100.0% means no breach at all. */
  function formatPercent(ratio) {
    return [[(Math.floor(ratio * 1000 + 1e-6) / 10).toFixed(1), "%"]];
  }

  /** A bad-when-high ratio (abandonment, occupancy, reopens) to one decimal, rounded up:
      0.0% means none at all, and a bad figure is never shown better than it is. */
  function formatPercentUp(ratio) {
    return [[(Math.ceil(ratio * 1000 - 1e-6) / 10).toFixed(1), "%"]];
  }

  function formatSigned(score) {
    const n = Math.round(score);
    if (n > 0) return [["+" + n, ""]];
    if (n < 0) return [[MINUS + -n, ""]];
    return [["0", ""]];
  }

  function formatCount(n) {
    return [[n, ""]];
  }

  const pad2 = (n) => String(n).padStart(2, "0");

  /** Age as a ticking clock: 1:02:03, or 2d 01:02:03. */
  function formatAge(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const days = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const clock = `${pad2(Math.floor((s % 3600) / 60))}:${pad2(s % 60)}`;
    return days > 0 ? `${days}d ${pad2(h)}:${clock}` : `${h}:${clock}`;
  }

  const clockFormats = new Map();

  /** HH:MM:SS in the worker's time zone (falls back to the browser's). */
  function formatClock(date, timeZone) {
    const key = timeZone || "";
    if (!clockFormats.has(key)) {
      const options = { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" };
      let format;
      try {
        format = new Intl.DateTimeFormat("en-GB", { ...options, timeZone: timeZone || undefined });
      } catch {
        format = new Intl.DateTimeFormat("en-GB", options);
      }
      clockFormats.set(key, format);
    }
    return clockFormats.get(key).format(date);
  }

  function colorFor(key, value, thresholds) {
    const t = thresholds ? thresholds[key] : undefined;
    if (typeof value !== "number" || !t) return "none";
    if (t.direction === "lower_is_better") {
      if (value <= t.green) return "green";
      return value <= t.amber ? "amber" : "red";
    }
    if (value >= t.green) return "green";
    return value >= t.amber ? "amber" : "red";
  }

  /** True when `key` of `row` rests on fewer answers than the worker's `min_answers`
      (shown greyed: too few to judge; absent `min_answers` marks nothing). */
  function fewAnswers(key, row, minAnswers, basisOf = BASIS_OF) {
    const n = row[basisOf[key]];
    return typeof row[key] === "number" && typeof n === "number"
      && typeof minAnswers === "number" && n < minAnswers;
  }

  // ---- DOM helpers --------------------------------------------------------

  function rawValue(value) {
    return typeof value === "number" ? String(value) : "null";
  }

  /** Fill el with the formatted value: big numbers, small units. */
  function showValue(el, value, format) {
    const parts = typeof value === "number" ? format(value) : [[DASH, ""]];
    const nodes = [];
    parts.forEach(([number, unit], i) => {
      if (i > 0) nodes.push(document.createTextNode(" "));
      nodes.push(document.createTextNode(String(number)));
      if (unit) {
        const small = document.createElement("span");
        small.className = "unit";
        small.textContent = unit;
        nodes.push(small);
      }
    });
    el.replaceChildren(...nodes);
    el.dataset.value = rawValue(value);
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  // ---- fitting text to its box -------------------------------------------
  // The CSS gives each text its largest size; these shrink it, by measurement in this
  // browser with the font it really draws, until nothing is wider than its box.

  const FIT_STEPS = 8;

  /** Width of el's content box over the width its content needs (< 1: too narrow), in
      fractional pixels: scrollWidth is rounded and misses a table cell's overflow. */
  function roomRatio(el) {
    const style = getComputedStyle(el);
    const room = el.getBoundingClientRect().width
      - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight)
      - parseFloat(style.borderLeftWidth) - parseFloat(style.borderRightWidth);
    const range = document.createRange();
    range.selectNodeContents(el);
    const needed = range.getBoundingClientRect().width;
    return needed > 0 ? room / needed : 1;
  }

  /** Shrink the font size of `target` until every element of `els` has room for its text. */
  function shrinkToFit(target, els) {
    target.style.fontSize = "";
    for (let i = 0; i < FIT_STEPS; i++) {
      const ratio = Math.min(1, ...els.map(roomRatio));
      if (ratio >= 1) return;
      const size = parseFloat(getComputedStyle(target).fontSize);
      target.style.fontSize = `${size * ratio * 0.98}px`;
    }
  }

  const fitText = (el) => shrinkToFit(el, [el]);

  function fitAll() {
    $$(".fit").forEach(fitText);
    $$(".queues").forEach(fitQueueRows);
    if (state.board === "agents") fitAgentRows();
  }

  // ---- rendering --------------------------------------------------------

  function render() {
    const data = state.data;
    if (!data) return;
    renderHeader(data);
    if (state.board === "agents") renderAgents(data);
    else renderBoards(data);
    fitAll();
  }

  /** Data-as-of time, time zone and the partial-data banner: the same on every board. */
  function renderHeader(data) {
    const asOf = $('[data-testid="as-of"]');
    const asOfDate = new Date(data.as_of);
    asOf.textContent = Number.isNaN(asOfDate.getTime())
      ? DASH
      : formatClock(asOfDate, data.timezone);
    asOf.dataset.value = String(data.as_of);
    asOf.setAttribute("datetime", String(data.as_of));
    $('[data-testid="timezone"]').textContent = data.timezone ? String(data.timezone) : "";

    const partial = $('[data-testid="partial-banner"]');
    const parts = data.partitions || {};
    partial.hidden = data.complete !== false;
    partial.textContent = data.complete === false
      ? `Partial data: ${parts.covered} of ${parts.total} partitions`
      : "";
  }

  /** The ticket and contact-centre boards from /api/kpis. */
  function renderBoards(data) {
    const windows = data.windows || {};
    const win = windows[state.window] || {};
    const overall = inQueue(win.overall, win.queues);
    const live = inQueue(data.live, (data.live || {}).queues);

    showTiles("data-kpi", KPI_FORMATS, overall, data, BASIS_OF);
    for (const el of $$("[data-basis]")) {
      const n = overall[el.dataset.basis];
      const few = el.closest(".tile").dataset.few === "true";
      el.textContent = typeof n === "number"
        ? `${n} ${BASIS_LABELS[el.dataset.basis]}${few ? " \u2014 too few to judge" : ""}`
        : "";
    }

    const awaiting = live.awaiting || {};
    for (const sla of AWAITING_STATES) {
      const el = $(`[data-awaiting="${sla}"]`);
      const n = awaiting[sla];
      el.textContent = typeof n === "number" ? String(n) : DASH;
      el.dataset.value = rawValue(n);
      el.closest(".count").classList.toggle("active", n > 0);
    }
    const openCount = $('[data-testid="open-count"]');
    openCount.textContent = typeof live.open === "number" ? `${live.open} open` : "";
    openCount.dataset.value = rawValue(live.open);
    $('[data-testid="oldest-age"]').dataset.value = rawValue(live.oldest_awaiting_age_seconds);
    const liveQueues = (data.live || {}).queues || [];
    renderQueues(onlyQueue(win.queues), onlyQueue(liveQueues), data.thresholds, data.min_answers);
    renderContacts(data);
  }

  /** `summary` (a row of /api/kpis over every queue), or with #queue= that queue's row of
      `queues` (empty when the queue has none). */
  function inQueue(summary, queues) {
    if (!state.queue) return summary || {};
    return (queues || []).find((q) => String(q.queue) === state.queue) || {};
  }

  /** The rows of a queue table: all, or with #queue= only that queue's. */
  function onlyQueue(rows) {
    return (rows || []).filter((q) => !state.queue || String(q.queue) === state.queue);
  }

  /** Each tile's value (the element whose `attribute` names a key of `formats`) from `row`,
      coloured by the thresholds of /api/kpis, greyed when it rests on too few answers. */
  function showTiles(attribute, formats, row, data, basisOf) {
    for (const [key, format] of Object.entries(formats)) {
      const el = $(`[${attribute}="${key}"]`);
      const value = row[key];
      const color = colorFor(key, value, data.thresholds);
      showValue(el, value, format);
      el.dataset.color = color;
      const tile = el.closest(".tile");
      tile.dataset.color = color;
      tile.dataset.few = String(fewAnswers(key, row, data.min_answers, basisOf));
    }
  }

  /** A contact row with the count its service level and abandonment rest on. */
  function withOffered(row) {
    const offered = typeof row.contacts_answered === "number"
      && typeof row.contacts_abandoned === "number"
      ? row.contacts_answered + row.contacts_abandoned
      : undefined;
    return { ...row, contacts_offered: offered };
  }

  /** The contact-centre board (`contact_centre` of /api/kpis, contract sections 7-8). */
  function renderContacts(data) {
    const centre = data.contact_centre || {};
    const win = (centre.windows || {})[state.window] || {};
    // Occupancy and agents by status are per team, never per queue: always all of them.
    const overall = {
      ...withOffered(inQueue(win.overall, win.queues)),
      occupancy_ratio: win.occupancy_ratio,
    };
    const live = inQueue(centre.live, (centre.live || {}).queues);
    showTiles("data-ckpi", CONTACT_FORMATS, overall, data, CONTACT_BASIS_OF);
    for (const el of $$("[data-cbasis]")) {
      const [field, label] = CONTACT_BASIS[el.dataset.cbasis];
      const n = overall[field];
      const few = el.closest(".tile").dataset.few === "true";
      el.textContent = typeof n === "number"
        ? `${n} ${label}${few ? " \u2014 too few to judge" : ""}`
        : "";
    }
    const waiting = $('[data-testid="contacts-waiting"]');
    waiting.textContent = typeof live.waiting === "number" ? String(live.waiting) : DASH;
    waiting.dataset.value = rawValue(live.waiting);
    $('[data-testid="contacts-in-progress"]').textContent = typeof live.in_progress === "number"
      ? `${live.in_progress} in progress`
      : "";
    const agents = centre.agents || {};
    for (const status of AGENT_STATUSES) {
      const el = $(`[data-agents="${status}"]`);
      el.textContent = typeof agents[status] === "number" ? String(agents[status]) : DASH;
      el.dataset.value = rawValue(agents[status]);
    }
    const longestWait = $('[data-testid="longest-wait"]');
    longestWait.dataset.value = rawValue(live.longest_wait_seconds);
    longestWait.dataset.color = colorFor(LONGEST_WAIT, live.longest_wait_seconds, data.thresholds);
    showAges();
    const liveQueues = onlyQueue((centre.live || {}).queues);
    renderContactQueues(onlyQueue(win.queues), liveQueues, data.thresholds, data.min_answers);
  }

  /** One row per contact queue, longest wait first: live waiting joined with window KPIs. */
  function renderContactQueues(kpiRows, liveRows, thresholds, minAnswers) {
    const wait = (live) => (typeof live.longest_wait_seconds === "number"
      ? live.longest_wait_seconds : -1);
    const rows = joinQueues(kpiRows.map(withOffered), liveRows, wait);
    const trs = rows.map((q) => {
      const tr = queueRow(q.name);
      const waiting = q.live.waiting || 0;
      const count = cell(String(waiting), waiting > 0 ? "" : "dim");
      count.dataset.col = "waiting";
      count.dataset.value = String(waiting);
      const age = q.live.longest_wait_seconds;
      const longest = cell(typeof age === "number" ? formatAge(age) : DASH);
      longest.dataset.col = "longest_wait_seconds";
      longest.dataset.value = rawValue(age);
      longest.dataset.color = colorFor(LONGEST_WAIT, age, thresholds);
      tr.append(count, longest);
      for (const key of CONTACT_QUEUE_COLUMNS) {
        const value = q.kpis[key];
        const td = cell("");
        showValue(td, value, CONTACT_FORMATS[key]);
        td.dataset.col = key;
        td.dataset.color = colorFor(key, value, thresholds);
        td.dataset.few = String(fewAnswers(key, q.kpis, minAnswers, CONTACT_BASIS_OF));
        tr.append(td);
      }
      return tr;
    });
    $('[data-testid="contact-queue-rows"]').replaceChildren(...trs);
  }

  /** Window KPI rows and live rows joined by queue name ({name, kpis, live}), the most
      urgent first (`urgency` of the live row, descending), then by name. */
  function joinQueues(kpiRows, liveRows, urgency) {
    const byName = new Map();
    const entry = (name) => {
      if (!byName.has(name)) byName.set(name, { name, kpis: {}, live: {} });
      return byName.get(name);
    };
    for (const q of kpiRows) entry(String(q.queue)).kpis = q;
    for (const q of liveRows) entry(String(q.queue)).live = q;
    return Array.from(byName.values()).sort((a, b) => {
      const [ua, ub] = [urgency(a.live), urgency(b.live)];
      if (ua !== ub) return ub - ua;
      if (a.name === b.name) return 0;
      return a.name < b.name ? -1 : 1;
    });
  }

  /** A table row for a queue, starting with its name (cut to fit, whole in the tooltip). */
  function queueRow(queue) {
    const tr = document.createElement("tr");
    tr.dataset.queue = queue;
    const name = cell(queue, "q-name");
    name.title = queue;
    tr.append(name);
    return tr;
  }

  /** One row per queue, window KPIs joined with live awaiting counts. */
  function renderQueues(kpiRows, liveRows, thresholds, minAnswers) {
    const breached = (live) => (live.awaiting || {}).breached || 0;
    const rows = joinQueues(kpiRows, liveRows, breached);
    const trs = rows.map((q) => {
      const tr = queueRow(q.name);
      const awaiting = q.live.awaiting || {};
      for (const key of QUEUE_COLUMNS) {
        const value = q.kpis[key];
        const td = cell("");
        showValue(td, value, KPI_FORMATS[key]);
        td.dataset.col = key;
        td.dataset.color = colorFor(key, value, thresholds);
        td.dataset.few = String(fewAnswers(key, q.kpis, minAnswers));
        tr.append(td);
      }
      for (const sla of AWAITING_STATES) {
        const n = awaiting[sla] || 0;
        const td = cell(String(n), n > 0 ? `aw-${sla}` : "dim");
        td.dataset.col = `awaiting_${sla}`;
        td.dataset.value = String(n);
        tr.append(td);
      }
      return tr;
    });
    $('[data-testid="queue-rows"]').replaceChildren(...trs);
  }

  /** Fit a queue table's text to one size, so that every number and heading fits its cell
      (queue names are cut with an ellipsis and carry the full name as a tooltip), then hide
      the rows that do not fit on screen and say how many. */
  function fitQueueRows(section) {
    const wrap = section.querySelector(".table-wrap");
    const rows = Array.from(section.querySelectorAll("tbody tr"));
    rows.forEach((tr) => { tr.hidden = false; });
    shrinkToFit(
      section.querySelector("table"),
      Array.from(section.querySelectorAll("th, td[data-col]")),
    );
    const bottom = wrap.getBoundingClientRect().bottom;
    const overflow = rows.filter((tr) => tr.getBoundingClientRect().bottom > bottom + 0.5);
    overflow.forEach((tr) => { tr.hidden = true; });
    section.querySelector(".more").textContent = overflow.length
      ? `+${overflow.length} more ${overflow.length === 1 ? "queue" : "queues"}`
      : "";
  }

  /** The oldest ticket awaiting a reply and the longest-waiting contact, ticking. */
  function showAges() {
    const data = state.data || {};
    const live = inQueue(data.live, (data.live || {}).queues);
    const centre = (data.contact_centre || {}).live || {};
    const centreLive = inQueue(centre, centre.queues);
    showAge($('[data-testid="oldest-age"]'), live.oldest_awaiting_age_seconds);
    showAge($('[data-testid="longest-wait"]'), centreLive.longest_wait_seconds);
  }

  /** An age as of the last answer, advanced by the time since it arrived. */
  function showAge(el, age) {
    if (typeof age !== "number") {
      el.textContent = DASH;
      fitText(el);
      return;
    }
    const text = formatAge(age + (performance.now() - state.receivedAt) / 1000);
    if (el.textContent !== text) {
      el.textContent = text;
      fitText(el);
    }
  }

  // ---- agents view (/agents) -------------------------------------------

  /** Seconds the agent has been in its current status at the last answer, or null. */
  function secondsInStatus(agent, asOfMs) {
    const since = Date.parse(agent.since);
    const known = agent.status && !Number.isNaN(since) && !Number.isNaN(asOfMs);
    return known ? Math.max(0, (asOfMs - since) / 1000) : null;
  }

  /** The value an agent row is sorted by in column `id`: text, a number, or null. */
  function sortValue(row, id) {
    if (id === "status") {
      const rank = AGENT_STATUSES.indexOf(row.agent.status);
      return rank < 0 ? null : rank;
    }
    if (id === "in_status") return row.inStatus;
    if (id === "agent" || id === "team") return row.agent[id] === null ? null : String(row.agent[id]);
    const field = AGENT_COLUMNS.find((c) => c[0] === id)[2];
    return typeof row.kpis[field] === "number" ? row.kpis[field] : null;
  }

  /** Agent rows in the chosen order; an empty value (—) last either way, ties by name. */
  function sortAgents(rows) {
    const sign = state.direction === "desc" ? -1 : 1;
    const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    return rows.sort((a, b) => {
      const [va, vb] = [sortValue(a, state.sort), sortValue(b, state.sort)];
      if (va === null || vb === null) return va === vb ? byName(a, b) : va === null ? 1 : -1;
      if (va !== vb) return (va < vb ? -1 : 1) * sign;
      return byName(a, b);
    });
  }

  /** The columns shown: every one, or the agent's own four and the set of #columns=. */
  function shownColumns() {
    const set = COLUMN_SETS[state.columns];
    return set ? AGENT_COLUMNS.filter(([id], i) => i < 4 || set.includes(id)) : AGENT_COLUMNS;
  }

  /** The column headings: a button each that sorts by it (again: the other way). */
  function renderAgentColumns() {
    const ths = shownColumns().map(([id, heading]) => {
      const th = document.createElement("th");
      th.scope = "col";
      th.className = `a-${id}`;
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.sort = id;
      const sorted = id === state.sort;
      button.textContent = sorted ? `${heading} ${state.direction === "asc" ? "\u25B2" : "\u25BC"}` : heading;
      th.setAttribute("aria-sort", sorted ? `${state.direction}ending` : "none");
      button.addEventListener("click", () => {
        const direction = id === state.sort && state.direction === "asc" ? "desc" : "asc";
        writeHash({ sort: id, dir: direction });
      });
      th.append(button);
      return th;
    });
    $('[data-testid="agent-columns"]').replaceChildren(...ths);
  }

  /** One row per agent of /api/agents (of the team in the URL, if any), sorted. */
  function renderAgents(data) {
    const asOfMs = Date.parse(data.as_of);
    const agents = Array.isArray(data.agents) ? data.agents : [];
    const rows = agents
      .filter((agent) => !state.team || agent.team === state.team)
      .map((agent) => ({
        agent,
        name: String(agent.agent),
        inStatus: secondsInStatus(agent, asOfMs),
        kpis: (agent.windows || {})[state.window] || {},
      }));
    renderAgentColumns();
    const trs = sortAgents(rows).map((row) => agentRow(row, data));
    $('[data-testid="agent-rows"]').replaceChildren(...trs);
  }

  function agentRow(row, data) {
    const { agent, kpis } = row;
    const tr = document.createElement("tr");
    tr.dataset.agent = row.name;
    const name = cell(row.name, "q-name");
    name.title = row.name;
    const team = cell(agent.team === null ? DASH : String(agent.team), "a-team");
    team.title = team.textContent;
    const status = cell(STATUS_NAMES[agent.status] || DASH, `status-${agent.status}`);
    status.dataset.col = "status";
    status.dataset.value = String(agent.status);
    const since = cell(timeInStatus(row.inStatus));
    since.dataset.col = "in_status";
    since.dataset.value = rawValue(row.inStatus);
    tr.append(name, team, status, since);
    for (const [id, , field, format] of shownColumns().slice(4)) {
      const value = kpis[field];
      const td = cell("");
      showValue(td, value, format);
      td.dataset.col = id;
      td.dataset.color = colorFor(field, value, data.thresholds);
      td.dataset.few = String(fewAnswers(field, kpis, data.min_answers, AGENT_BASIS_OF));
      tr.append(td);
    }
    return tr;
  }

  /** Time in status, `seconds` as of the last answer counted on since: a ticking clock
      (12:34:56) under a day, days and hours (3d 4h) from then on. */
  function timeInStatus(seconds) {
    if (seconds === null) return DASH;
    const now = seconds + (performance.now() - state.receivedAt) / 1000;
    if (now < 86400) return formatAge(now);
    return formatDuration(now).map(([n, unit]) => `${n}${unit}`).join(" ");
  }

  /** Time in status, ticking; refits the table when it gets wider. */
  function showTimesInStatus() {
    let wider = false;
    for (const td of $$('[data-agent] td[data-col="in_status"]')) {
      const text = timeInStatus(td.dataset.value === "null" ? null : Number(td.dataset.value));
      if (td.textContent !== text) {
        wider = wider || text.length > td.textContent.length;
        td.textContent = text;
      }
    }
    if (wider) fitAgentRows();
  }

  /** Fit the agents table's values to one size (and each heading by itself: a long word
      must not shrink every number), then split the rows into pages of what fits on screen;
      the page turns every `rotate` seconds (#rotate=, default 10). */
  function fitAgentRows() {
    const section = $(".roster");
    const wrap = section.querySelector(".table-wrap");
    const rows = $$("[data-agent]");
    rows.forEach((tr) => { tr.hidden = false; });
    shrinkToFit(section.querySelector("table"), $$("[data-agent] td[data-col]"));
    $$(".roster th").forEach(fitText);
    const bottom = wrap.getBoundingClientRect().bottom;
    const fits = rows.filter((tr) => tr.getBoundingClientRect().bottom <= bottom + 0.5).length;
    const perPage = Math.max(1, fits);
    state.pages = Math.max(1, Math.ceil(rows.length / perPage));
    state.page %= state.pages;
    rows.forEach((tr, i) => { tr.hidden = Math.floor(i / perPage) !== state.page; });
    const count = `${rows.length} ${rows.length === 1 ? "agent" : "agents"}`;
    const team = state.team ? `team ${state.team} \u00B7 ` : "";
    const page = state.pages > 1 ? ` \u00B7 page ${state.page + 1}/${state.pages}` : "";
    const footer = $('[data-testid="agents-page"]');
    footer.textContent = `${team}${count}${page}`;
    footer.dataset.page = String(state.page + 1);
    footer.dataset.pages = String(state.pages);
  }

  function turnPage() {
    if (state.pages < 2) return;
    state.page = (state.page + 1) % state.pages;
    fitAgentRows();
  }

  // ---- freshness --------------------------------------------------------

  /** Why the board is stale, or null: the worker not answering, the worker saying its own
      data is stale (`stale`, `stale_reason` in /api/kpis), or data older than 10 s. */
  function staleMessage() {
    const timeZone = state.data ? state.data.timezone : undefined;
    if (performance.now() - state.lastAnswerAt > STALE_NO_ANSWER_MS) {
      return `STALE ${DASH} worker not answering since ${formatClock(state.lastAnswerWall, timeZone)}`;
    }
    if (state.data && state.data.stale === true) {
      const reason = state.data.stale_reason;
      return `STALE ${DASH} ${STALE_REASONS[Object.hasOwn(STALE_REASONS, reason) ? reason : "unknown"]}`;
    }
    const asOf = state.data ? Date.parse(state.data.as_of) : NaN;
    if (Date.now() - asOf > STALE_AS_OF_AGE_MS) {
      return `STALE ${DASH} no new data since ${formatClock(new Date(asOf), timeZone)}`;
    }
    return null;
  }

  function updateFreshness() {
    const message = staleMessage();
    const banner = $('[data-testid="stale-banner"]');
    banner.dataset.since = state.lastAnswerWall.toISOString();
    let status = "live";
    if (message !== null) status = "stale";
    else if (!state.data) status = "connecting";
    if (document.body.dataset.state === status && banner.textContent === (message || "")) return;
    banner.hidden = message === null;
    banner.textContent = message || "";
    document.body.dataset.state = status;
    $('[data-testid="live-indicator"]').textContent = `\u25CF ${status}`;
    fitAll();
  }

  function tick() {
    if (state.board === "agents") showTimesInStatus();
    else showAges();
    updateFreshness();
  }

  // ---- polling ----------------------------------------------------------

  async function fetchKpis() {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), FETCH_TIMEOUT_MS);
    try {
      const response = await fetch(API_URL, {
        cache: "no-store",
        signal: abort.signal,
        headers: { Accept: "application/json" },
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = await response.json();
      const expected = state.board === "agents" ? Array.isArray(body && body.agents)
        : typeof (body && body.windows) === "object";
      if (!body || typeof body !== "object" || !expected) {
        throw new Error(`unexpected ${API_URL} body`);
      }
      return body;
    } finally {
      clearTimeout(timer);
    }
  }

  async function poll() {
    const started = performance.now();
    try {
      state.data = await fetchKpis();
      state.receivedAt = performance.now();
      state.lastAnswerAt = state.receivedAt;
      state.lastAnswerWall = new Date();
      render();
    } catch (error) {
      // No answer this time; the stale banner shows once this lasts too long.
      console.debug(`wallboard: ${API_URL} failed:`, error);
    }
    updateFreshness();
    setTimeout(poll, Math.max(0, POLL_INTERVAL_MS - (performance.now() - started)));
  }

  // ---- URL: board, window, and the agents view's order, team and paging ----

  /** A parameter of the URL hash (#board=contacts&window=15m), decoded; "" when absent or
      not a valid percent-escape. */
  function hashValue(name) {
    const match = new RegExp(`(?:^#|&)${name}=([^&]*)`).exec(window.location.hash);
    try {
      return match ? decodeURIComponent(match[1]) : "";
    } catch {
      return ""; // URIError: not a valid value.
    }
  }

  /** A parameter of the URL hash if it is one of `allowed`; the default for anything else. */
  function hashParameter(name, allowed, fallback) {
    const chosen = hashValue(name);
    return allowed.includes(chosen) ? chosen : fallback;
  }

  /** Set the URL hash to this board's view with `changes` applied (a window button, a
      column heading) and show it. The window is always written; the agents view's order
      only when it is not the default. */
  function writeHash(changes) {
    const view = {
      board: state.board === "agents" || state.board === DEFAULT_BOARD ? "" : state.board,
      window: state.window,
      queue: state.queue,
      sort: state.sort,
      dir: state.direction,
      team: state.team,
      columns: state.columns,
      rotate: hashValue("rotate"),
      ...changes,
    };
    if (view.sort === DEFAULT_SORT && view.dir === "asc") view.sort = view.dir = "";
    const parts = Object.entries(view)
      .filter(([, value]) => value)
      .map(([key, value]) => `${key}=${encodeURIComponent(value)}`);
    history.replaceState(null, "", `#${parts.join("&")}`);
    selectFromHash();
  }

  /** The board links of the header: the board shown is marked; each keeps the window (and
      the two boards of `/` the queue). The queue shown, if one is, is named beside them. */
  function showBoardLinks() {
    const win = state.window === DEFAULT_WINDOW ? "" : `window=${state.window}`;
    const queue = state.queue ? `queue=${encodeURIComponent(state.queue)}` : "";
    const ticketHash = [win, queue].filter(Boolean).join("&");
    const hrefs = {
      tickets: ticketHash ? `/#${ticketHash}` : "/",
      contacts: `/#${["board=contacts", win, queue].filter(Boolean).join("&")}`,
      agents: `${AGENTS_PATH}${win ? "#" + win : ""}`,
    };
    // Drawn by CSS from data-queue, cut with an ellipsis: a name may have 128 characters.
    const filter = $('[data-testid="queue-filter"]');
    filter.hidden = !state.queue || state.board === "agents";
    filter.dataset.queue = filter.hidden ? "" : state.queue;
    filter.title = filter.hidden ? "" : `Queue: ${state.queue}`;
    for (const link of $$("[data-board-link]")) {
      link.href = hrefs[link.dataset.boardLink];
      if (link.dataset.boardLink === state.board) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  /** Show the board, window (and, at /agents, order, team and page turning) the URL names. */
  function selectFromHash() {
    state.window = hashParameter("window", WINDOWS, DEFAULT_WINDOW);
    if (state.board !== "agents") state.board = hashParameter("board", BOARDS, DEFAULT_BOARD);
    state.sort = hashParameter("sort", AGENT_SORTS, DEFAULT_SORT);
    state.direction = hashParameter("dir", DIRECTIONS, "asc");
    state.team = hashValue("team");
    state.columns = hashParameter("columns", Object.keys(COLUMN_SETS), "");
    state.queue = state.board === "agents" ? "" : hashValue("queue");
    const rotate = Number(hashValue("rotate"));
    state.rotateMs = (Number.isFinite(rotate) && rotate >= 1 ? rotate : DEFAULT_ROTATE_S) * 1000;
    for (const button of $$("[data-window]")) {
      button.setAttribute("aria-pressed", String(button.dataset.window === state.window));
    }
    for (const board of $$("main[data-board]")) board.hidden = board.dataset.board !== state.board;
    document.body.dataset.board = state.board;
    showBoardLinks();
    restartRotation();
    render();
    fitAll();
  }

  let rotation = null;

  function restartRotation() {
    clearInterval(rotation);
    rotation = state.board === "agents" ? setInterval(turnPage, state.rotateMs) : null;
  }

  function start() {
    for (const button of $$("[data-window]")) {
      button.addEventListener("click", () => writeHash({ window: button.dataset.window }));
    }
    window.addEventListener("hashchange", selectFromHash);
    window.addEventListener("resize", fitAll);
    document.fonts.addEventListener("loadingdone", fitAll);
    document.fonts.ready.then(fitAll);
    if (state.board === "agents") renderAgentColumns();
    selectFromHash();
    setInterval(tick, TICK_MS);
    poll();
  }

  start();
})();
