// The bot's live web view: the overview (#/) and a strategy's page (#/strategy/<id>), read from /api/v1 and kept
// current by its event stream. Plain JS, no build step; every text is set through textContent (nothing a server
// or strategy says is ever parsed as HTML). Tests read window.botView (the data each chart was given) and the
// data-* attributes; they never look at pixels.
"use strict";

const API = "/api/v1";
const TOKEN_KEY = "bot.api-token";
// Test hooks, set before this script runs (window.botViewOptions): smaller trade pages, the idle refresh off (0), faster slow timers.
const OPTIONS = window.botViewOptions || {};
// A refresh starts at most this often (ms), however many events ask for one.
const MIN_REFRESH_MS = 1000;
// Without events (a quiet feed, or the stream down) a refresh still comes this often (ms), while the page is visible; 0: never.
const IDLE_REFRESH_MS = OPTIONS.idleRefreshMs === undefined ? 5000 : Number(OPTIONS.idleRefreshMs);
// The equity curves and the trade counts are read on their own slower timer (ms): heavy reads, slow to change.
const SLOW_REFRESH_MS = Number(OPTIONS.slowRefreshMs) || 20_000;
// An event's effects (equity marked to the new candle, a position booked) may land just after it: one more refresh then.
const SETTLE_MS = 1200;
// The stream's reconnect pause grows from this to the cap; it starts again from the least only after an event came
// (or the stream stayed open STREAM_HEALTHY_MS): a stream that opens and closes at once backs off.
const BACKOFF_MS = 500;
const BACKOFF_MAX_MS = 10_000;
const STREAM_HEALTHY_MS = 30_000;
// Lines kept in a strategy's live event list; equity points kept per strategy when the page samples them itself.
const EVENT_LINES = 200;
const SAMPLED_POINTS = 2000;
const LIVE_CANDLES = 1000;
// Trades per page of the trades table; a test may ask for smaller pages.
const TRADES_PAGE = Number(OPTIONS.tradesPage) || 100;
// Reads in flight at once per tab: with the one event stream, a few tabs stay within a browser's 6 connections per host.
const MAX_READS = 2;
// Beyond this many curves on one equity chart, no per-curve last-value label (they would cover each other).
const LABELLED_CURVES = 10;
// What can change a number on the page: the one stream of a tab asks for these (and, on a strategy page, the strategy events).
const TRIGGER_TYPES = [
  "candle", "feed_state", "kill_switch", "strategy_state", "strategy_error", "order_filled",
  "position_opened", "position_reduced", "position_closed", "stop_updated", "trailing_activated",
];
const STRATEGY_TYPES = [
  ...TRIGGER_TYPES.slice(3), "signal", "order_submitted", "order_cancelled", "order_rejected", "reconcile_difference",
  "risk_rejected", "action_failed",
];
// Events after which the trade counts are read at once rather than on the slow timer.
const TRADE_TYPES = ["position_closed", "position_reduced"];
// Twenty colours, none repeated before the twenty-first curve.
const PALETTE = [
  "#2962ff", "#e65100", "#2e7d32", "#6a1b9a", "#00838f", "#c62828", "#5d4037", "#ad1457", "#558b2f", "#283593",
  "#f9a825", "#00695c", "#8e24aa", "#d84315", "#1565c0", "#9e9d24", "#4e342e", "#c2185b", "#0277bd", "#424242",
];

// What tests read: each chart's data as given to the chart, the live stream's state, the refresh count and causes.
const view = {
  charts: {},
  live: "connecting",
  refreshes: 0,
  refreshing: 0,
  lastRefresh: null,
  // Why the last refresh ran: "load", "event", "settle", "idle", "visible", "action", "route", "token".
  causes: [],
  missing: [],
  // The stream's open connections (0 or 1), its reconnect pauses in order (ms), and refreshes thrown away for a route left.
  streams: 0,
  reconnectDelays: [],
  discarded: 0,
};
window.botView = view;

// --- small helpers -------------------------------------------------------------------------------------------
const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined) continue;
    if (name === "text") node.textContent = String(value);
    else if (name === "class") node.className = value;
    else if (name.startsWith("data-")) node.setAttribute(name, String(value));
    else node[name] = value;
  }
  for (const child of children) node.append(child);
  return node;
}

function cell(text, cls) {
  return el("td", { text: text ?? "–", class: cls });
}

// Decimals for an amount of `currency`: cents for fiat-like money, satoshi-scale for coins.
function decimals(currency) {
  return ["USD", "USDT", "USDC", "EUR", "GBP", "BUSD", "DAI"].includes(currency) ? 2 : 6;
}

function money(value, currency) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return `${value.toFixed(decimals(currency))} ${currency}`;
}

function signed(value, currency) {
  if (value === null || value === undefined) return "–";
  const text = money(value, currency);
  return value > 0 ? `+${text}` : text;
}

function sign(value) {
  return value > 0 ? "pos" : value < 0 ? "neg" : undefined;
}

function number(value) {
  if (value === null || value === undefined) return "–";
  return String(Number(Number(value).toPrecision(6)));
}

function price(value) {
  if (value === null || value === undefined) return "–";
  const abs = Math.abs(value);
  return abs >= 1000 ? value.toFixed(2) : abs >= 1 ? value.toFixed(4) : value.toPrecision(6);
}

function iso(ms) {
  if (ms === null || ms === undefined) return "–";
  return new Date(ms).toISOString().replace(".000Z", "Z").replace("T", " ");
}

function latency(us) {
  if (us === null || us === undefined) return "–";
  return us < 1000 ? `${us.toFixed(0)} µs` : `${(us / 1000).toFixed(1)} ms`;
}

// Milliseconds of a timeframe such as 1m, 15m, 4h, 1d, 1w.
function timeframeMs(timeframe) {
  const match = /^(\d+)([smhdw])$/.exec(timeframe || "");
  if (!match) return 60_000;
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[match[2]];
  return Number(match[1]) * unit;
}

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// --- the token and API calls ---------------------------------------------------------------------------------
function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

// Why a token cannot be sent, or "": a header carries printable ASCII only (RFC 6750's b64token has no spaces either).
function tokenProblem(value) {
  if (!value) return "";
  return /^[\x21-\x7e]+$/.test(value) ? "" : "a token is printable ASCII without spaces (letters, digits, punctuation): this one is not, so it was not kept";
}

// Those waiting for a token (a stream whose token form was cancelled): woken when one is set. After a cancel no
// read asks again (the form would come back at every refresh) until a token is set in the token field.
let tokenWaiters = [];
let tokenDeclined = false;

function setToken(value) {
  const trimmed = (value || "").trim();
  const problem = tokenProblem(trimmed);
  if (problem) return problem;
  if (trimmed) sessionStorage.setItem(TOKEN_KEY, trimmed);
  else sessionStorage.removeItem(TOKEN_KEY);
  $("#token-input").value = "";
  $("#token-input").placeholder = trimmed ? "a token is kept for this tab" : "bearer token (kept for this tab)";
  if (trimmed) {
    tokenDeclined = false;
    const waiting = tokenWaiters;
    tokenWaiters = [];
    for (const wake of waiting) wake();
  }
  return "";
}

function tokenSet() {
  return new Promise((resolve) => tokenWaiters.push(resolve));
}

function authHeaders() {
  const value = token();
  return value ? { Authorization: `Bearer ${value}` } : {};
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// At most MAX_READS reads of this tab in flight; the others wait their turn (the browser's connections are few and shared).
const readSlots = { free: MAX_READS, queue: [] };

async function slot(run) {
  if (readSlots.free > 0) readSlots.free -= 1;
  else await new Promise((resolve) => readSlots.queue.push(resolve));
  try {
    return await run();
  } finally {
    const next = readSlots.queue.shift();
    if (next) next();
    else readSlots.free += 1;
  }
}

async function call(method, path, body) {
  const headers = { Accept: "application/json", ...authHeaders() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const send = () => fetch(API + path, {
    method, headers, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = async () => {
    const reply = await send();
    return { ok: reply.ok, status: reply.status, statusText: reply.statusText, data: await reply.json().catch(() => null) };
  };
  const response = await (method === "GET" ? slot(answer) : answer());
  // An empty or non-JSON body is null: the status says what happened.
  const data = response.data;
  if (!response.ok) {
    const error = data && data.error ? data.error : {};
    throw new ApiError(response.status, error.code || `http_${response.status}`, error.message || response.statusText);
  }
  return data;
}

// The one token form: every read refused with 401 waits on the same form, shown once until it is answered.
// Resolves true when a token was given, false when the form was cancelled.
let tokenAsked = null;

function askToken(message) {
  if (tokenAsked) return tokenAsked;
  if (tokenDeclined) return Promise.resolve(false);
  const form = $("#token-dialog");
  const shown = $("#token-dialog-message");
  shown.textContent = message;
  form.hidden = false;
  const input = $("#token-dialog-input");
  input.value = "";
  input.focus();
  tokenAsked = new Promise((resolve) => {
    const done = (given) => {
      form.removeEventListener("submit", submitted);
      form.removeEventListener("keydown", escaped);
      $("#token-dialog-cancel").removeEventListener("click", cancelled);
      input.value = "";
      form.hidden = true;
      tokenAsked = null;
      resolve(given);
    };
    const submitted = (event) => {
      event.preventDefault();
      const problem = setToken(input.value);
      if (problem) {
        shown.textContent = `${message} (${problem})`;
        shown.dataset.problem = "token";
        return;
      }
      delete shown.dataset.problem;
      done(true);
    };
    const cancelled = () => {
      tokenDeclined = true;
      done(false);
    };
    const escaped = (event) => {
      if (event.key === "Escape") cancelled();
    };
    form.addEventListener("submit", submitted);
    form.addEventListener("keydown", escaped);
    $("#token-dialog-cancel").addEventListener("click", cancelled);
  });
  return tokenAsked;
}

// A read: on 401 the token form, then the read again (a cancelled form leaves the 401).
async function read(path) {
  try {
    return await call("GET", path);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
    if (!(await askToken(`${error.message}. Enter the API token (kept in this tab only).`))) throw error;
    return call("GET", path);
  }
}

// A read of a route a daemon may not have yet (404/405): null, and the page says what it shows instead.
async function optional(path, what) {
  if (view.missing.includes(what)) return null; // asked once per page load: a daemon does not grow routes while it runs
  try {
    return await read(path);
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 405) && error.code !== "unknown_strategy") {
      if (!view.missing.includes(what)) view.missing.push(what);
      return null;
    }
    throw error;
  }
}

// --- refreshing: on events, at most once a second, only while visible ---------------------------------------
class Refresher {
  constructor(run) {
    this.run = run;
    this.running = false;
    this.pending = false;
    this.causes = new Set();
    this.lastStart = -Infinity;
    this.timer = null;
    this.settleTimer = null;
    // Bumped by a new route: a run of an older generation finishes unseen (its reads returned for a page left).
    this.generation = 0;
  }

  // Refresh as soon as allowed (now, or MIN_REFRESH_MS after the last start); never two at once for one route.
  want(cause) {
    this.causes.add(cause);
    if (document.visibilityState !== "visible" || this.running) {
      this.pending = true;
      return;
    }
    const wait = this.lastStart + MIN_REFRESH_MS - performance.now();
    if (wait > 0) {
      if (!this.timer) this.timer = setTimeout(() => { this.timer = null; this.want("later"); }, wait);
      return;
    }
    this.start();
  }

  // A new route: whatever still runs for the old one is left to finish unseen, and this one starts at once.
  restart(cause) {
    this.generation += 1;
    this.running = false;
    this.lastStart = -Infinity;
    clearTimeout(this.timer);
    this.timer = null;
    this.want(cause);
  }

  // An event: refresh now, and once more when its effects have landed.
  poke(cause = "event") {
    this.want(cause);
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => this.want("settle"), SETTLE_MS);
  }

  async start() {
    const generation = this.generation;
    const current = () => generation === this.generation;
    this.running = true;
    this.pending = false;
    this.lastStart = performance.now();
    const causes = [...this.causes].filter((cause) => cause !== "later");
    this.causes.clear();
    view.refreshing += 1;
    try {
      await this.run(causes, current);
      if (current()) $("#load-error").hidden = true;
    } catch (error) {
      if (current()) {
        const shown = $("#load-error");
        shown.textContent = error instanceof ApiError ? `${error.status} ${error.code}: ${error.message}` : `cannot reach the daemon: ${error.message || error}`;
        if (error instanceof ApiError && error.status === 401) shown.textContent += " (reload the page, or use a strategy page's token field, to give the token)";
        shown.hidden = false;
      }
    } finally {
      view.refreshing -= 1;
      view.refreshes += 1;
      view.lastRefresh = Date.now();
      document.body.dataset.refreshes = String(view.refreshes);
      if (current()) {
        this.running = false;
        if (this.pending) this.want("later");
      }
    }
  }
}

// --- the live event stream: fetch() and a stream reader (EventSource cannot send the token) -------------------
// Server-sent events as the spec frames them: lines end in \n, \r\n or \r; a blank line ends a message; ":" starts a comment;
// data lines are joined with \n. Text in, messages out, however the text was cut into chunks.
class SseParser {
  constructor() {
    this.buffer = "";
    this.type = "";
    this.data = [];
  }

  // The messages complete with this text; `last` when the body has ended (a \r at its very end then ends a line).
  push(text, last = false) {
    this.buffer += text;
    const out = [];
    const ends = /\r\n|\r|\n/g;
    let at = 0;
    let match;
    while ((match = ends.exec(this.buffer))) {
      // A \r last in what came so far may be half of a \r\n: wait for the next chunk.
      if (match[0] === "\r" && match.index === this.buffer.length - 1 && !last) break;
      this.line(this.buffer.slice(at, match.index), out);
      at = ends.lastIndex;
    }
    this.buffer = this.buffer.slice(at);
    return out;
  }

  line(text, out) {
    if (text === "") {
      if (this.data.length) out.push({ event: this.type || "message", data: this.data.join("\n") });
      this.type = "";
      this.data = [];
      return;
    }
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    const value = colon < 0 ? "" : text.slice(colon + 1).replace(/^ /, "");
    if (field === "event") this.type = value;
    else if (field === "data") this.data.push(value);
  }
}

// The tab's one event stream: open while the tab is visible, on the query of the page shown; reconnects by itself.
class LiveStream {
  constructor(onEvent, { indicator = false, onOpen = () => {} } = {}) {
    this.onEvent = onEvent;
    this.onOpen = onOpen;
    this.indicator = indicator;
    this.session = null;
  }

  setState(state) {
    if (!this.indicator) return;
    view.live = state;
    const shown = $("#live");
    shown.dataset.state = state;
    shown.textContent = { live: "live", connecting: "connecting", reconnecting: "reconnecting", unauthorized: "no token", paused: "paused (tab hidden)" }[state] || state;
  }

  // (Re)open on this query: the one before is closed first.
  open(query) {
    this.close();
    const session = this.session = { query, stopped: false, controller: null };
    this.setState("connecting");
    this.loop(session);
  }

  close() {
    if (!this.session) return;
    this.session.stopped = true;
    if (this.session.controller) this.session.controller.abort();
    this.session = null;
  }

  async loop(session) {
    let backoff = BACKOFF_MS;
    while (!session.stopped) {
      session.controller = new AbortController();
      let healthy = false;
      try {
        const response = await fetch(`${API}/events${session.query}`, { headers: authHeaders(), cache: "no-store", signal: session.controller.signal });
        if (response.status === 401) {
          const body = await response.json().catch(() => ({}));
          this.setState("unauthorized");
          // A cancelled form: wait for a token from the token field, asking nothing more.
          if (!(await askToken(`${(body.error && body.error.message) || "unauthorized"}. Enter the API token (kept in this tab only).`))) await tokenSet();
          continue;
        }
        if (!response.ok) throw new Error(`events: HTTP ${response.status}`);
        if (session.stopped) return;
        this.setState("live");
        // Events missed while the stream was down are caught up by a refresh now it is back.
        this.onOpen();
        view.streams += 1;
        const timer = setTimeout(() => { healthy = true; }, STREAM_HEALTHY_MS);
        try {
          await this.consume(response.body, () => { healthy = true; });
        } finally {
          clearTimeout(timer);
          view.streams -= 1;
          session.controller.abort(); // the server's end (slow_reader) or ours: the connection goes with it
        }
      } catch (error) {
        if (session.stopped) return;
        if (!(error instanceof DOMException && error.name === "AbortError")) console.info("event stream:", error.message || error);
      }
      if (session.stopped) return;
      // Closed by the server (slow_reader, a restart) or the network: come back after a pause, growing unless an event came.
      if (healthy) backoff = BACKOFF_MS;
      this.setState("reconnecting");
      view.reconnectDelays.push(backoff);
      await delay(backoff);
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    }
  }

  // Read a stream's body to its end, or to an `event: error` (slow_reader: the server ends it): "closed" or "end".
  async consume(body, onMessage = () => {}) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        // At the end a message not closed by its blank line is dropped (the spec's rule).
        for (const message of parser.push(done ? "" : value, done)) {
          if (message.event === "error") {
            console.info("event stream ended by the server:", message.data);
            return "end";
          }
          onMessage();
          try {
            this.onEvent(JSON.parse(message.data));
          } catch (error) {
            console.info("event stream: unreadable event", error.message || error);
          }
        }
        if (done) return "closed";
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }
}

// --- charts ---------------------------------------------------------------------------------------------------
function chartOptions() {
  return {
    autoSize: true,
    layout: { background: { color: "#ffffff" }, textColor: "#1d2330" },
    grid: { vertLines: { color: "#f0f2f5" }, horzLines: { color: "#f0f2f5" } },
    timeScale: { timeVisible: true, secondsVisible: false },
    rightPriceScale: { borderVisible: false },
  };
}

// Line data from [ts_ms, value] points: times strictly increasing (the chart requires it), the last value of a second kept.
function linePoints(points) {
  const out = [];
  for (const [ts, value] of points) {
    const time = Math.floor(ts / 1000);
    if (out.length && out[out.length - 1].time >= time) {
      if (out[out.length - 1].time === time) out[out.length - 1] = { time, value };
      continue;
    }
    out.push({ time, value });
  }
  return out;
}

// --- shared state ---------------------------------------------------------------------------------------------
const state = {
  route: { name: "overview" },
  status: null,
  // Latest candle close seen per symbol on the stream (a recorded feed's status has no per-symbol times).
  lastCandle: {},
  // Equity sampled from status, per strategy, when the daemon has no /equity route.
  sampled: {},
  equityCharts: {},
  price: null,
  trades: new Map(),
  tradesNext: undefined,
  tradesFor: null,
  liveCandles: {},
  // The slow reads (equity curves, trade counts): due on load, on the slow timer, when the tab is visible again; counts after a trade event too.
  equityDue: true,
  countsDue: true,
  equity: null,
  counts: null,
};

// The route of a hash; anything else (a malformed escape such as %E0%A4%A too) is the overview.
function routeOf(hash) {
  const match = /^#\/strategy\/(.+)$/.exec(hash || "");
  if (!match) return { name: "overview" };
  try {
    return { name: "strategy", id: decodeURIComponent(match[1]) };
  } catch {
    return { name: "overview" };
  }
}

function onRoute(name, id) {
  return state.route.name === name && (id === undefined || state.route.id === id);
}

// --- rows updated in place: a refresh keeps the reader's focus and selection ----------------------------------
// Make `old` look like `fresh` (attributes, text, children), keeping `old`'s nodes where their tags match.
function morph(old, fresh) {
  if (old.nodeType !== fresh.nodeType || old.nodeName !== fresh.nodeName) {
    old.replaceWith(fresh);
    return;
  }
  if (old.nodeType === Node.TEXT_NODE) {
    if (old.data !== fresh.data) old.data = fresh.data;
    return;
  }
  for (const { name } of [...old.attributes]) if (!fresh.hasAttribute(name)) old.removeAttribute(name);
  for (const { name, value } of fresh.attributes) if (old.getAttribute(name) !== value) old.setAttribute(name, value);
  const olds = [...old.childNodes];
  const news = [...fresh.childNodes];
  news.forEach((child, i) => (i < olds.length ? morph(olds[i], child) : old.append(child)));
  for (const extra of olds.slice(news.length)) extra.remove();
}

// A table body's rows, each keyed by its `key` attribute: a row kept is updated in place, moved only when out of order.
function syncRows(tbody, key, rows) {
  const existing = new Map([...tbody.children].map((tr) => [tr.getAttribute(key), tr]));
  const kept = rows.map((fresh) => {
    const old = existing.get(fresh.getAttribute(key));
    if (!old) return fresh;
    existing.delete(fresh.getAttribute(key));
    morph(old, fresh);
    return old;
  });
  for (const gone of existing.values()) gone.remove();
  kept.forEach((tr, i) => {
    if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
  });
}

// --- header: health, problems, clock ------------------------------------------------------------------------
function renderHeader(status, causes) {
  const health = $("#health");
  health.dataset.health = status.health;
  health.textContent = status.health;
  const problems = $("#problems");
  problems.replaceChildren(...status.problems.map((problem) => el("li", { text: problem })));
  problems.hidden = status.problems.length === 0;
  const clock = $("#clock");
  clock.dataset.ts = String(status.clock_ts);
  // What the refresh that read this clock was for (tests tell an event's update from the idle one's).
  clock.dataset.causes = causes.join(" ");
  view.causes = causes;
  clock.textContent = iso(status.clock_ts);
}

// --- overview -------------------------------------------------------------------------------------------------
// Points wanted of an equity curve: about one per pixel of the chart's width.
function equityPoints() {
  const width = $("#equity-charts").clientWidth || window.innerWidth || 1000;
  return Math.max(50, Math.min(2000, Math.round(width)));
}

async function refreshOverview(status, current) {
  const equityDue = state.equityDue;
  const countsDue = state.countsDue;
  state.equityDue = false;
  state.countsDue = false;
  const [metrics, trades, equity] = await Promise.all([
    read("/metrics"),
    countsDue ? optional("/trades?limit=1", "trades") : state.counts,
    equityDue ? optional(`/equity?points=${equityPoints()}`, "equity") : state.equity,
  ]);
  if (!current()) {
    view.discarded += 1;
    return;
  }
  state.counts = trades;
  state.equity = equity;
  renderStrategies(status, metrics, trades);
  renderTotals(status);
  renderFeed(status);
  sample(status);
  // Drawn when read (the slow timer), or at every refresh when the page samples the curves itself.
  if (equityDue || !equity) renderEquity(status, equity);
}

function renderStrategies(status, metrics, trades) {
  const rows = Object.entries(status.strategies);
  const withWorker = rows.some(([, row]) => row.worker !== undefined);
  for (const th of document.querySelectorAll(".worker-col")) th.hidden = !withWorker;
  syncRows($("#strategies tbody"), "data-strategy", rows.map(([sid, row]) => {
    const figures = (metrics.strategies || {})[sid] || {};
    const counts = trades && trades.counts ? trades.counts[sid] : undefined;
    const net = row.equity - row.starting_balance;
    const tr = el("tr", { "data-strategy": sid, "data-state": row.state, "data-currency": row.currency, "data-equity": row.equity });
    tr.append(
      el("td", {}, el("a", { href: `#/strategy/${encodeURIComponent(sid)}`, text: sid })),
      cell(row.policy ? `${row.state} (${row.policy})` : row.state),
    );
    if (withWorker) tr.append(cell(row.worker ?? "hub"));
    tr.append(
      cell(money(row.equity, row.currency)),
      cell(signed(net, row.currency), sign(net)),
      cell(signed(row.day_pnl, row.currency), sign(row.day_pnl)),
      cell(String(row.positions)),
      cell(counts ? String(counts.today) : "–"),
      cell(latency(figures.p99_us)),
      cell(figures.overruns === undefined ? "–" : String(figures.overruns)),
    );
    if (row.last_error) tr.title = row.last_error;
    return tr;
  }));
}

// Net PnL per currency: each currency summed on its own, never one added to another.
function renderTotals(status) {
  const per = {};
  for (const row of Object.values(status.strategies)) {
    const total = per[row.currency] || (per[row.currency] = { count: 0, equity: 0, net: 0 });
    total.count += 1;
    total.equity += row.equity;
    total.net += row.equity - row.starting_balance;
  }
  const days = status.currencies || {};
  const currencies = [...new Set([...Object.keys(per), ...Object.keys(days)])];
  syncRows($("#totals tbody"), "data-currency", currencies.map((currency) => {
    const total = per[currency] || { count: 0, equity: 0, net: 0 };
    const day = days[currency] || {};
    return el("tr", { "data-currency": currency, "data-net": total.net },
      cell(currency), cell(String(total.count)), cell(money(total.equity, currency)),
      cell(signed(total.net, currency), sign(total.net)), cell(signed(day.day_pnl, currency), sign(day.day_pnl)),
      cell(day.max_daily_loss === null || day.max_daily_loss === undefined ? "–" : money(day.max_daily_loss, currency)));
  }));
}

function renderFeed(status) {
  const feed = status.feed || {};
  const scalars = Object.entries(feed).filter(([, value]) => value === null || typeof value !== "object");
  $("#feed-summary").textContent = scalars.map(([key, value]) => `${key}: ${value}`).join(" · ");
  let rows;
  if (feed.symbols && typeof feed.symbols === "object") {
    rows = Object.entries(feed.symbols).map(([symbol, s]) => [symbol, s.state, s.last_ts ?? state.lastCandle[symbol], s.detail]);
  } else {
    // A recorded feed has one state for all: each symbol a strategy trades, with its last candle seen on the stream.
    const symbols = new Set(Object.values(status.strategies).flatMap((row) => row.symbols));
    for (const symbol of Object.keys(status.added_symbols || {})) symbols.add(symbol);
    rows = [...symbols].sort().map((symbol) => [symbol, feed.state, state.lastCandle[symbol], null]);
  }
  syncRows($("#feed tbody"), "data-symbol", rows.map(([symbol, feedState, last, detail]) =>
    el("tr", { "data-symbol": symbol, "data-state": feedState }, cell(symbol), cell(feedState), cell(last ? iso(last) : "–"), cell(detail || ""))));
}

// Without /equity the page keeps its own curve: one point per status read at a new clock time.
function sample(status) {
  for (const [sid, row] of Object.entries(status.strategies)) {
    const points = state.sampled[sid] || (state.sampled[sid] = []);
    if (!points.length || points[points.length - 1][0] < status.clock_ts) points.push([status.clock_ts, row.equity]);
    if (points.length > SAMPLED_POINTS) points.splice(0, points.length - SAMPLED_POINTS);
  }
}

// One chart per currency, one curve per strategy: each strategy's own equity, never a sum across currencies.
function renderEquity(status, equity) {
  const curves = {};
  if (equity && equity.strategies) {
    for (const [sid, entry] of Object.entries(equity.strategies)) curves[sid] = { currency: entry.currency, points: entry.points };
  } else {
    for (const [sid, row] of Object.entries(status.strategies)) curves[sid] = { currency: row.currency, points: state.sampled[sid] || [] };
  }
  const note = $("#equity-note");
  note.hidden = Boolean(equity);
  note.textContent = equity ? "" : "This daemon has no /api/v1/equity: the curves start when this page opened.";
  const byCurrency = {};
  for (const [sid, curve] of Object.entries(curves)) (byCurrency[curve.currency] || (byCurrency[curve.currency] = [])).push(sid);
  const holder = $("#equity-charts");
  for (const [currency, sids] of Object.entries(byCurrency)) {
    const name = `equity:${currency}`;
    let entry = state.equityCharts[currency];
    if (!entry) {
      const box = el("div", { class: "chart", "data-chart": name, "data-currency": currency });
      holder.append(el("p", { class: "chart-title", text: `Equity (${currency})` }), box);
      entry = state.equityCharts[currency] = { chart: LightweightCharts.createChart(box, chartOptions()), series: {} };
    }
    const given = {};
    const colors = {};
    // Many curves: no last-value label each (they would pile up on the price scale); the legend's titles stay.
    const labelled = sids.length <= LABELLED_CURVES;
    sids.forEach((sid) => {
      let series = entry.series[sid];
      if (!series) {
        // Each strategy its colour by its place in status (one unloaded since keeps a curve, in the first colour).
        const color = PALETTE[Math.max(0, Object.keys(status.strategies).indexOf(sid)) % PALETTE.length];
        series = entry.series[sid] = entry.chart.addSeries(LightweightCharts.LineSeries, {
          color, lineWidth: 2, title: sid, priceLineVisible: false,
          priceFormat: { type: "price", precision: decimals(currency), minMove: 10 ** -decimals(currency) },
        });
      }
      series.applyOptions({ lastValueVisible: labelled, title: labelled ? sid : "" });
      colors[sid] = series.options().color;
      given[sid] = linePoints(curves[sid].points);
      series.setData(given[sid]);
    });
    if (!entry.fitted && Object.values(given).some((points) => points.length > 1)) {
      // Once, when there is a curve to see: the whole of it; afterwards the reader's zoom and scroll are kept.
      entry.chart.timeScale().fitContent();
      entry.fitted = true;
    }
    for (const sid of Object.keys(entry.series)) {
      if (!sids.includes(sid)) {
        entry.chart.removeSeries(entry.series[sid]);
        delete entry.series[sid];
      }
    }
    view.charts[name] = { currency, series: given, colors, labelled, candles: [], markers: [], lines: [] };
  }
}

// --- strategy page --------------------------------------------------------------------------------------------
async function refreshStrategy(sid, status, current) {
  if (state.tradesFor !== sid) {
    state.trades = new Map();
    state.tradesNext = undefined;
    state.tradesFor = sid;
    state.tradesPage = undefined;
  }
  const enc = encodeURIComponent(sid);
  // The trades (and their counts) at the slow pace, or at once after a trade event; five reads, at most MAX_READS at a time.
  const tradesDue = state.countsDue || state.tradesPage === undefined;
  state.countsDue = false;
  const [strategy, positions, trades, candles, metrics] = await Promise.all([
    read(`/strategies/${enc}`),
    read(`/strategies/${enc}/positions`),
    tradesDue ? optional(`/strategies/${enc}/trades?limit=${TRADES_PAGE}`, "trades") : state.tradesPage,
    optional(`/strategies/${enc}/candles`, "candles"),
    read("/metrics"),
  ]);
  // Read for a page since left (another strategy, the overview): drawn nowhere.
  if (!current() || !onRoute("strategy", sid) || state.tradesFor !== sid) {
    view.discarded += 1;
    return;
  }
  state.tradesPage = trades;
  const open = positions[sid] ? positions[sid].positions : [];
  if (trades) {
    for (const trade of trades.trades) state.trades.set(trade.n, trade);
    if (state.tradesNext === undefined) state.tradesNext = trades.next;
  }
  renderStrategyHead(sid, strategy, metrics, trades, status);
  renderPositions(open);
  renderTrades(strategy.currency, trades !== null);
  renderParams(strategy.config);
  renderSwitchTargets(sid, status);
  renderPrice(sid, strategy, candles, open);
}

function renderStrategyHead(sid, strategy, metrics, trades, status) {
  $("#s-id").textContent = sid;
  const badge = $("#s-state");
  badge.dataset.state = strategy.state;
  badge.textContent = strategy.policy ? `${strategy.state} (${strategy.policy})` : strategy.state;
  const figures = (metrics.strategies || {})[sid] || {};
  const counts = trades && trades.counts ? trades.counts[sid] : undefined;
  const row = status.strategies[sid] || {};
  const parts = [
    `${strategy.symbols.join(", ")} ${strategy.timeframe}`,
    `equity ${money(strategy.equity, strategy.currency)}`,
    `net ${signed(strategy.equity - strategy.starting_balance, strategy.currency)}`,
    `day ${signed(strategy.day_pnl, strategy.currency)}`,
    `positions ${strategy.positions}`,
    counts ? `trades ${counts.total} (today ${counts.today})` : null,
    `p99 ${latency(figures.p99_us)}`,
    `overruns ${figures.overruns ?? "–"}`,
    row.worker !== undefined ? `worker ${row.worker ?? "hub"}` : null,
    strategy.warm ? null : "warming up",
    strategy.last_error ? `last error: ${strategy.last_error}` : null,
  ];
  $("#s-summary").textContent = parts.filter(Boolean).join(" · ");
}

function renderPositions(open) {
  syncRows($("#positions tbody"), "data-position", open.map((p) => el("tr", { "data-position": p.position_id, "data-side": p.side },
    cell(p.position_id), cell(p.side), cell(number(p.quantity)), cell(price(p.entry_price)), cell(iso(p.entry_ts)),
    cell(price(p.stop_loss)), cell(p.trailing_stop == null ? (p.trailing_active ? "active" : "–") : price(p.trailing_stop)),
    cell(p.take_profit.length ? p.take_profit.map(([at, qty, done]) => `${price(at)}×${number(qty)}${done ? " ✓" : ""}`).join(", ") : "–"),
    cell(number(p.realised)))));
}

function renderTrades(currency, available) {
  const note = $("#trades-note");
  note.hidden = available;
  note.textContent = available ? "" : "This daemon has no /api/v1/strategies/{id}/trades: trades are not shown.";
  const trades = [...state.trades.values()].sort((a, b) => b.n - a.n);
  syncRows($("#trades tbody"), "data-trade", trades.map((t) => el("tr", { "data-trade": t.n },
    cell(String(t.n)), cell(t.side), cell(number(t.quantity)), cell(price(t.entry_price)), cell(price(t.exit_price)),
    cell(iso(t.exit_ts)), cell(signed(t.pnl, t.currency || currency), sign(t.pnl)), cell(number(t.fees)), cell(t.exit_reason))));
  const older = $("#trades-older");
  older.hidden = !available || state.tradesNext === null || state.tradesNext === undefined;
}

async function loadOlderTrades() {
  const sid = state.tradesFor;
  if (sid === null || state.tradesNext === null || state.tradesNext === undefined) return;
  const page = await read(`/strategies/${encodeURIComponent(sid)}/trades?limit=${TRADES_PAGE}&before=${state.tradesNext}`);
  if (state.tradesFor !== sid) return;
  for (const trade of page.trades) state.trades.set(trade.n, trade);
  state.tradesNext = page.next;
  renderTrades(state.status ? (state.status.strategies[sid] || {}).currency : "", true);
  refresher.want("older");
}

// Parameters as dotted paths (what `set` takes); each path a button (a click or Enter puts it and its value in the set form).
function renderParams(config) {
  const rows = [];
  const walk = (value, path) => {
    if (value !== null && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length) {
      for (const [key, inner] of Object.entries(value)) walk(inner, path ? `${path}.${key}` : key);
    } else {
      rows.push([path, JSON.stringify(value)]);
    }
  };
  walk(config, "");
  syncRows($("#params tbody"), "data-path", rows.map(([path, value]) => el("tr", { "data-path": path },
    el("td", {}, el("button", { type: "button", class: "param", text: path, "data-path": path, "data-value": value, title: "put in the set form" })),
    cell(value))));
}

function renderSwitchTargets(sid, status) {
  const select = $("#switch-to");
  const chosen = select.value;
  const others = Object.keys(status.strategies).filter((other) => other !== sid);
  // Rebuilt only when the list changed: an open list (a phone's picker) is not closed under the reader.
  if ([...select.options].map((option) => option.value).join("\n") === others.join("\n")) return;
  select.replaceChildren(...others.map((other) => el("option", { value: other, text: other })));
  if (others.includes(chosen)) select.value = chosen;
}

// The candlestick chart, its indicators (overlays on the price pane, the others in panes below), markers and lines.
function renderPrice(sid, strategy, payload, open) {
  const tf = payload ? payload.timeframe : strategy.timeframe;
  const tfMs = payload && payload.timeframe_ms ? payload.timeframe_ms : timeframeMs(tf);
  let rows;
  const note = $("#candles-note");
  if (payload) {
    rows = payload.candles;
    note.hidden = true;
  } else {
    // No /candles route: the candles of this strategy's stream as they arrive.
    rows = state.liveCandles[`${strategy.symbols[0]} ${tf}`] || [];
    note.hidden = false;
    note.textContent = "This daemon has no /api/v1/strategies/{id}/candles: candles are drawn as they arrive.";
  }
  let chartState = state.price;
  if (!chartState || chartState.sid !== sid) {
    if (chartState) chartState.chart.remove();
    // A few empty bars at the right: the open position's marker label at the last candle is not cut by the price scale (a phone's narrow chart).
    const options = chartOptions();
    const chart = LightweightCharts.createChart($("#price-chart"), { ...options, timeScale: { ...options.timeScale, rightOffset: 8 } });
    const candle = chart.addSeries(LightweightCharts.CandlestickSeries, {
      upColor: "#26a69a", downColor: "#ef5350", wickUpColor: "#26a69a", wickDownColor: "#ef5350", borderVisible: false,
      // The price scale spans the stop and take-profit lines too: a stop far below the candles is still seen.
      autoscaleInfoProvider: (original) => {
        const range = original();
        const prices = state.price ? state.price.linePrices : [];
        if (!range || !range.priceRange || !prices.length) return range;
        const { minValue, maxValue } = range.priceRange;
        return { ...range, priceRange: { minValue: Math.min(minValue, ...prices), maxValue: Math.max(maxValue, ...prices) } };
      },
    });
    chartState = state.price = { sid, chart, candle, markers: LightweightCharts.createSeriesMarkers(candle, []), series: {}, lines: [], linePrices: [] };
  }
  const candles = rows.map(([ts, o, h, l, c]) => ({ time: Math.floor(ts / 1000), open: o, high: h, low: l, close: c }));
  chartState.candle.applyOptions({ priceFormat: { type: "price", precision: pricePrecision(rows), minMove: 10 ** -pricePrecision(rows) } });
  chartState.candle.setData(candles);

  // Indicator series, aligned with the candles; null (warming up) is a gap.
  const given = {};
  let pane = 0;
  const wanted = new Set();
  for (const indicator of payload ? payload.indicators : []) {
    const paneIndex = indicator.overlay ? 0 : ++pane;
    Object.entries(indicator.series).forEach(([field, values], index) => {
      const key = `${indicator.key}.${field}`;
      wanted.add(key);
      let series = chartState.series[key];
      if (!series) {
        series = chartState.series[key] = chartState.chart.addSeries(LightweightCharts.LineSeries, {
          color: PALETTE[(Object.keys(chartState.series).length + index) % PALETTE.length], lineWidth: 1,
          title: field === "value" ? indicator.name : `${indicator.name} ${field}`, priceLineVisible: false, lastValueVisible: false,
        }, paneIndex);
      }
      const data = candles.map((candle, i) => (values[i] === null || values[i] === undefined ? { time: candle.time } : { time: candle.time, value: values[i] }));
      series.setData(data);
      given[key] = data;
    });
  }
  for (const key of Object.keys(chartState.series)) {
    if (!wanted.has(key)) {
      chartState.chart.removeSeries(chartState.series[key]);
      delete chartState.series[key];
    }
  }

  const symbol = payload ? payload.symbol : strategy.symbols[0];
  // A strategy trading two symbols (pairs): this chart's symbol only.
  const markers = tradeMarkers(open.filter((p) => p.symbol === symbol), [...state.trades.values()].filter((t) => t.symbol === symbol), candles, tfMs);
  chartState.markers.setMarkers(markers);

  for (const line of chartState.lines) chartState.candle.removePriceLine(line);
  const lines = stopLines(open.filter((p) => p.symbol === symbol));
  chartState.linePrices = lines.map((line) => line.price);
  chartState.lines = lines.map((line) => chartState.candle.createPriceLine({
    price: line.price, color: line.color, lineWidth: 1, lineStyle: LightweightCharts.LineStyle.Dashed, axisLabelVisible: true, title: line.title,
  }));
  const last = candles.length ? candles[candles.length - 1].time * 1000 : null;
  const box = $("#price-chart");
  box.dataset.lastCandle = last === null ? "" : String(last);
  box.dataset.symbol = symbol;
  box.dataset.timeframe = tf;
  view.charts.price = { sid, symbol: box.dataset.symbol, timeframe: tf, candles, markers, lines, series: given };
}

function pricePrecision(rows) {
  const last = rows.length ? rows[rows.length - 1][4] : 1000;
  return last >= 1000 ? 2 : last >= 1 ? 4 : 8;
}

// Entry and exit markers of the trades loaded and the open positions, on the candle each fell in (the last one if later).
function tradeMarkers(open, trades, candles, tfMs) {
  if (!candles.length) return [];
  const first = candles[0].time;
  const last = candles[candles.length - 1].time;
  const at = (ms) => {
    const time = Math.floor(Math.floor(ms / tfMs) * tfMs / 1000);
    if (time < first || time > last + tfMs / 1000) return null;
    return Math.min(time, last);
  };
  const markers = [];
  const entry = (id, side, ts, text) => {
    const time = at(ts);
    if (time !== null) markers.push({ id: `entry:${id}`, time, position: side === "long" ? "belowBar" : "aboveBar", shape: side === "long" ? "arrowUp" : "arrowDown", color: side === "long" ? "#1a7f37" : "#c62828", text });
  };
  for (const trade of trades) {
    entry(trade.position_id, trade.side, trade.entry_ts, `${trade.side} ${number(trade.quantity)}`);
    const time = at(trade.exit_ts);
    if (time !== null) markers.push({ id: `exit:${trade.position_id}`, time, position: trade.side === "long" ? "aboveBar" : "belowBar", shape: "circle", color: trade.pnl >= 0 ? "#2e7d32" : "#b71c1c", text: `exit ${trade.exit_reason}` });
  }
  for (const position of open) entry(position.position_id, position.side, position.entry_ts, `${position.side} ${number(position.quantity)} open`);
  return markers.sort((a, b) => a.time - b.time);
}

function stopLines(open) {
  const lines = [];
  for (const p of open) {
    // A trailing stop active but not placed yet (null) draws no line: only a price draws one.
    if (Number.isFinite(p.stop_loss)) lines.push({ kind: "stop_loss", position_id: p.position_id, price: p.stop_loss, color: "#c62828", title: "stop" });
    if (Number.isFinite(p.trailing_stop)) lines.push({ kind: "trailing_stop", position_id: p.position_id, price: p.trailing_stop, color: "#e65100", title: "trail" });
    (p.take_profit || []).forEach(([at, , done], rung) => {
      if (!done && Number.isFinite(at)) lines.push({ kind: "take_profit", position_id: p.position_id, price: at, rung, color: "#2e7d32", title: `tp${rung + 1}` });
    });
  }
  return lines;
}

// --- controls -------------------------------------------------------------------------------------------------
let replies = 0;

function showReply(status, text, code = "", httpStatus = "") {
  const box = $("#reply");
  replies += 1;
  box.dataset.status = status;
  box.dataset.code = code;
  box.dataset.http = String(httpStatus);
  box.dataset.seq = String(replies);
  box.textContent = text;
}

// A control action: the server's reply shown as it came (its result, or its error code and message); never the token form.
async function act(label, path, body) {
  showReply("pending", `${label}…`);
  try {
    const result = await call("POST", path, body);
    showReply("ok", `${label}: ${JSON.stringify(result, null, 2)}`, "", 200);
  } catch (error) {
    if (error instanceof ApiError) showReply("error", `${label} refused (${error.status} ${error.code}): ${error.message}`, error.code, error.status);
    else showReply("error", `${label} failed: ${error.message || error}`, "network");
  }
  refresher.poke("action");
}

// A change that closes positions at market (policy close) goes only after the reader confirms it.
function confirmed(label, policy) {
  if (policy !== "close") return true;
  if (window.confirm(`${label} ${state.route.id} and close its open positions at market?`)) return true;
  showReply("cancelled", `${label}: not sent (not confirmed)`, "cancelled");
  return false;
}

function wireControls() {
  const sid = () => encodeURIComponent(state.route.id);
  $("#do-activate").addEventListener("click", () => act("activate", `/strategies/${sid()}/activate`, {}));
  $("#do-deactivate").addEventListener("click", () => {
    const policy = $("#deactivate-policy").value;
    if (confirmed("deactivate", policy)) act("deactivate", `/strategies/${sid()}/deactivate`, { policy });
  });
  $("#do-switch").addEventListener("click", () => {
    const policy = $("#switch-policy").value;
    if (confirmed("switch", policy)) act("switch", `/strategies/${sid()}/switch`, { to: $("#switch-to").value, policy });
  });
  $("#set-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const path = $("#set-path").value.trim();
    let value;
    try {
      value = JSON.parse($("#set-value").value);
    } catch {
      showReply("error", "set: the value is not JSON (a number, true, \"text\", [..], {..})", "bad_value");
      return;
    }
    act("set", `/strategies/${sid()}/set`, { path, value });
  });
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const problem = setToken($("#token-input").value);
    if (problem) showReply("error", `token: ${problem}`, "bad_token");
    else refresher.want("token");
  });
  $("#token-clear").addEventListener("click", () => setToken(""));
  $("#trades-older").addEventListener("click", () => loadOlderTrades().catch((error) => showReply("error", `older trades: ${error.message}`, error.code || "")));
  $("#params tbody").addEventListener("click", (event) => {
    const button = event.target.closest("button.param");
    if (!button) return;
    $("#set-path").value = button.dataset.path;
    $("#set-value").value = button.dataset.value;
  });
}

// --- events: the page's triggers and a strategy's event list -------------------------------------------------
function onTrigger(event) {
  if (event.type === "candle") {
    const { symbol, timeframe, candle } = event.payload;
    if (!state.lastCandle[symbol] || event.ts > state.lastCandle[symbol]) state.lastCandle[symbol] = event.ts;
    // For a daemon without the /candles route: every stream's candles as they arrive (a few streams, LIVE_CANDLES each).
    const key = `${symbol} ${timeframe}`;
    const kept = state.liveCandles[key] || (state.liveCandles[key] = []);
    if (!kept.length || kept[kept.length - 1][0] < candle[0]) kept.push(candle);
    if (kept.length > LIVE_CANDLES) kept.shift();
  }
  if (TRADE_TYPES.includes(event.type)) state.countsDue = true;
  refresher.poke();
}

function onStrategyEvent(event) {
  const list = $("#events");
  const payload = JSON.stringify(event.payload);
  const text = `${iso(event.ts)} ${event.type} ${payload.length > 400 ? `${payload.slice(0, 400)}…` : payload}`;
  list.prepend(el("li", { text, "data-type": event.type, "data-seq": event.seq, "data-strategy": event.strategy_id }));
  while (list.children.length > EVENT_LINES) list.lastChild.remove();
}

// One stream for the tab: the triggers everywhere, and on a strategy page that strategy's events too (filtered here).
function onEvent(event) {
  if (state.route.name === "strategy" && event.strategy_id === state.route.id) onStrategyEvent(event);
  if (TRIGGER_TYPES.includes(event.type)) onTrigger(event);
}

function streamQuery(next) {
  const types = next.name === "strategy" ? [...new Set([...TRIGGER_TYPES, ...STRATEGY_TYPES])] : TRIGGER_TYPES;
  return `?${types.map((type) => `type=${type}`).join("&")}`;
}

const stream = new LiveStream(onEvent, { indicator: true, onOpen: () => refresher.poke("event") });

// --- routing --------------------------------------------------------------------------------------------------
async function refreshAll(causes, current) {
  const status = await read("/status");
  if (!current()) {
    view.discarded += 1;
    return;
  }
  state.status = status;
  renderHeader(status, causes);
  if (state.route.name === "overview") await refreshOverview(status, current);
  else if (status.strategies[state.route.id] === undefined) showUnknown(state.route.id);
  else {
    $("#strategy").dataset.known = "true";
    $("#s-controls").hidden = false;
    $("#s-chart").hidden = false;
    await refreshStrategy(state.route.id, status, current);
  }
}

// A strategy page's sections emptied: its chart, tables, events (leaving it, or for an id not loaded).
function clearStrategy() {
  if (state.price) {
    state.price.chart.remove();
    state.price = null;
  }
  delete view.charts.price;
  for (const id of ["#positions", "#trades", "#params"]) $(`${id} tbody`).replaceChildren();
  $("#events").replaceChildren();
  $("#trades-older").hidden = true;
  $("#s-id").textContent = "";
  $("#s-summary").textContent = "";
  const badge = $("#s-state");
  badge.dataset.state = "";
  badge.textContent = "";
  state.trades = new Map();
  state.tradesNext = undefined;
  state.tradesFor = null;
  state.tradesPage = undefined;
}

function showUnknown(sid) {
  if ($("#strategy").dataset.known !== "false") clearStrategy();
  $("#strategy").dataset.known = "false";
  $("#s-id").textContent = sid;
  $("#s-summary").textContent = `No strategy "${sid}" is loaded (unloaded, or a mistyped address): nothing to show or control. The overview lists those loaded.`;
  $("#s-controls").hidden = true;
  $("#s-chart").hidden = true;
}

function route() {
  const next = routeOf(location.hash);
  const changed = next.name !== state.route.name || next.id !== state.route.id;
  state.route = next;
  $("#overview").hidden = next.name !== "overview";
  $("#strategy").hidden = next.name !== "strategy";
  if (!changed) return;
  clearStrategy();
  $("#strategy").dataset.known = "";
  state.countsDue = true;
  state.equityDue = true;
  if (next.name === "strategy") {
    showReply("", "no action yet");
    document.title = `bot · ${next.id}`;
  } else {
    document.title = "bot";
  }
  if (document.visibilityState === "visible") stream.open(streamQuery(next));
  refresher.restart("route");
}

const refresher = new Refresher(refreshAll);

// Hidden, the tab holds no connection (a browser has 6 per host for all its tabs); visible again, it reopens and catches up.
function onVisibility() {
  if (document.visibilityState === "visible") {
    state.equityDue = true;
    state.countsDue = true;
    stream.open(streamQuery(state.route));
    refresher.want("visible");
  } else {
    stream.close();
    stream.setState("paused");
  }
}

// What tests reach in the page: the parser and the pure helpers.
view.internals = { LiveStream, SseParser, routeOf, stopLines, tradeMarkers, tokenProblem, renderEquity, PALETTE };

function main() {
  setToken(token());
  wireControls();
  window.addEventListener("hashchange", route);
  document.addEventListener("visibilitychange", onVisibility);
  if (IDLE_REFRESH_MS > 0) setInterval(() => refresher.want("idle"), IDLE_REFRESH_MS);
  setInterval(() => {
    state.equityDue = true;
    state.countsDue = true;
    refresher.want("slow");
  }, SLOW_REFRESH_MS);
  state.route = { name: "" };
  route();
}

main();
