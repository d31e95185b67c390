// The ArgOS memory dashboard: cluster map, live stream, comparison, recall box, analytics.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import "./style.css";
import {
  Api,
  ApiError,
  type AnalyticsPayload,
  type ClusterItem,
  type ClusterSummary,
  type Counters,
  type LifecycleItem,
  type PointsPayload,
  type RecallHit,
} from "./api";
import { STATE_COLOURS, TYPE_COLOURS, clusterColour, NONE } from "./colours";
import { PointSet } from "./points";
import { Scatter, type Ring, type View } from "./scatter";

type ColourBy = "cluster" | "type" | "state";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

function fmt(n: number | null | undefined, digits = 0): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "–";
  if (Math.abs(n) >= 10000) return `${(n / 1000).toFixed(1)}k`;
  return n.toFixed(digits);
}

function when(ts: number): string {
  return Number.isFinite(ts) ? new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 16) : "–";
}

function errText(e: unknown): string {
  if (e instanceof ApiError) {
    const b = e.body as { error?: string } | string;
    return `${e.status}: ${typeof b === "string" ? b : b?.error ?? ""}`;
  }
  return String(e);
}

interface LogEntry {
  kind: string;
  text: string;
  clusters: string[];
  at: number;
}

class Pane {
  readonly root: HTMLElement;
  readonly plot: HTMLElement;
  readonly legend: HTMLElement;
  readonly tip: HTMLElement;
  readonly stat: HTMLElement;
  readonly pts = new PointSet();
  readonly scatter: Scatter;
  ns = "";
  agent = "";
  es: EventSource | null = null;
  nsSel: HTMLSelectElement | null = null;
  agentSel: HTMLSelectElement | null = null;
  summaries = new Map<string, ClusterSummary>();
  loadMs = 0;
  private reloadTimer = 0;
  private ringsVersion = -1;

  constructor(
    private app: App,
    readonly name: string,
    readonly primary: boolean,
  ) {
    this.root = el("div", { class: "pane", "data-testid": `pane-${name}` });
    const head = el("div", { class: "pane-head" }, el("span", { class: "title" }, name));
    if (!primary) {
      this.nsSel = el("select", { "data-testid": `namespace-${name}` });
      this.agentSel = el("select", { "data-testid": `agent-${name}` });
      head.append(el("label", {}, "namespace ", this.nsSel), el("label", {}, "agent ", this.agentSel));
      this.nsSel.onchange = async () => {
        await this.app.fillAgents(this.agentSel!, this.nsSel!.value, "", true);
        this.setTarget(this.nsSel!.value, this.agentSel!.value);
      };
      this.agentSel.onchange = () => this.setTarget(this.ns, this.agentSel!.value);
    }
    this.stat = el("span", { class: "stat", "data-testid": `stat-${name}` });
    head.append(this.stat);
    this.plot = el("div", { class: "plot" });
    this.tip = el("div", { class: "tip" });
    this.plot.append(this.tip);
    this.legend = el("div", { class: "legend" });
    this.root.append(head, this.plot, this.legend);
    this.scatter = new Scatter(this.plot, this.pts);
    this.scatter.onHover = (i) => this.hovered(i);
    this.scatter.onClick = (i) => this.clicked(i);
    this.scatter.onViewChange = () => this.showStat();
  }

  async setTarget(ns: string, agent: string): Promise<void> {
    this.ns = ns;
    this.agent = agent;
    this.scatter.selectedCluster = -1;
    this.scatter.highlights = [];
    this.scatter.autoFit = true;
    this.es?.close();
    this.es = null;
    if (!ns) {
      this.pts.clear();
      this.refresh();
      return;
    }
    await this.load();
    this.connect();
  }

  async load(): Promise<void> {
    const t0 = performance.now();
    try {
      const p = await this.app.api.get<PointsPayload>("/dashboard/api/points", {
        namespace: this.ns,
        agent_id: this.agent || null,
        limit: this.app.limit,
      });
      this.loadMs = performance.now() - t0;
      this.pts.load(p);
      this.app.hooks.loads++;
    } catch (e) {
      this.stat.textContent = errText(e);
      this.stat.classList.add("error");
      return;
    }
    this.stat.classList.remove("error");
    if (this.agent) this.loadSummaries();
    this.refresh(true);
  }

  private async loadSummaries(): Promise<void> {
    try {
      const { clusters } = await this.app.api.get<{ clusters: ClusterSummary[] }>("/clusters", {
        namespace: this.ns,
        agent_id: this.agent,
      });
      this.summaries = new Map(clusters.map((c) => [c.cluster_id, c]));
      this.ringsVersion = -1;
      this.refresh();
    } catch {
      /* the map still works without them */
    }
  }

  /** Debounced re-fetch (the projection moved, or a split moved members). */
  reloadSoon(ms: number): void {
    window.clearTimeout(this.reloadTimer);
    this.reloadTimer = window.setTimeout(() => this.load(), ms);
  }

  connect(): void {
    const es = this.app.api.events({ namespace: this.ns, agent_id: this.agent || null });
    this.es = es;
    const hooks = this.app.hooks;
    const on = (name: string, fn: (data: any) => void) =>
      es.addEventListener(name, (ev) => {
        hooks.sse[name] = (hooks.sse[name] ?? 0) + 1;
        fn(JSON.parse((ev as MessageEvent).data));
      });
    es.onopen = () => this.primary && this.app.setLive(true);
    es.onerror = () => this.primary && this.app.setLive(false);
    on("hello", () => this.primary && this.app.setLive(true));
    on("memories", (p: PointsPayload) => {
      const fresh = this.pts.merge(p);
      this.scatter.flash(fresh);
      for (const i of fresh.slice(0, 3)) this.app.log("memory", `${this.pts.agents[this.pts.agent[i]]}: ${this.pts.content[i]}`, []);
      if (fresh.length > 3) this.app.log("memory", `+${fresh.length - 3} more new memories`, []);
      this.refresh(this.scatter.autoFit);
    });
    on("lifecycle", (p: { items: LifecycleItem[] }) => {
      for (const it of this.pts.lifecycle(p.items)) {
        const kind = it.cause === "duplicate" ? "near-dup" : it.to_state;
        if (it.to_state === "created") continue;
        this.app.log(kind, `${it.agent_id} ${it.memory_id}: ${it.from_state} → ${it.to_state}${it.cause ? ` (${it.cause})` : ""}`, []);
      }
      this.refresh();
    });
    on("clusters", (p: { items: ClusterItem[] }) => {
      const { notable, resync } = this.pts.clusterEvents(p.items);
      for (const it of notable) {
        const text =
          it.kind === "merge"
            ? `${it.related.join(", ")} merged into ${it.cluster_id} (size ${it.size})`
            : `${it.cluster_id} split off ${it.related.join(", ")} (size ${it.size})`;
        this.app.log(it.kind, text, [it.cluster_id, ...it.related]);
      }
      for (const it of p.items) this.app.history(it);
      if (resync) this.reloadSoon(3000);
      this.refresh();
    });
    on("projection", () => this.reloadSoon(800));
    on("counters", (c: Counters) => this.primary && this.app.counters(c));
  }

  recolour(): void {
    const by = this.app.colourBy;
    const pts = this.pts;
    if (by === "cluster") {
      const names = pts.clusters.map((c) => clusterColour(c));
      names.push(NONE);
      const none = names.length - 1;
      this.scatter.setColours(names, (i) => (pts.cluster[i] < 0 ? none : pts.cluster[i]));
    } else if (by === "type") {
      this.scatter.setColours(pts.types.map((t) => TYPE_COLOURS[t] ?? NONE), (i) => pts.type[i]);
    } else {
      this.scatter.setColours(pts.states.map((s) => STATE_COLOURS[s] ?? NONE), (i) => pts.state[i]);
    }
  }

  /** After any change: colours, legend, cluster rings, agents, the counts. */
  refresh(fit = false): void {
    this.scatter.view = this.app.view;
    this.recolour();
    if (fit || (this.scatter.autoFit && this.pts.n > 0)) this.scatter.fit();
    this.rings();
    this.markers();
    this.legendUpdate();
    this.showStat();
    this.scatter.request();
  }

  private rings(): void {
    const s = this.scatter;
    if (this.app.colourBy !== "cluster" || this.app.view !== "embedding") {
      s.rings = [];
      this.ringsVersion = -1;
      return;
    }
    if (this.ringsVersion === this.pts.version) return;
    this.ringsVersion = this.pts.version;
    const pts = this.pts;
    const k = pts.clusters.length;
    const sx = new Float64Array(k);
    const sy = new Float64Array(k);
    const cnt = new Int32Array(k);
    const X = s.xs();
    const Y = s.ys();
    for (let i = 0; i < pts.n; i++) {
      const c = pts.cluster[i];
      if (c >= 0 && pts.alive[i] && Number.isFinite(X[i]) && Number.isFinite(Y[i])) {
        sx[c] += X[i];
        sy[c] += Y[i];
        cnt[c]++;
      }
    }
    const order = [...cnt.keys()].filter((c) => cnt[c] >= 2).sort((a, b) => cnt[b] - cnt[a]).slice(0, 30);
    const rings: Ring[] = [];
    order.forEach((c, rank) => {
      const name = pts.clusters[c];
      const info = this.summaries.get(name) ?? pts.clusterInfo.get(name);
      const size = info?.size ?? cnt[c];
      const stab = info ? info.stability : null;
      rings.push({
        x: sx[c] / cnt[c],
        y: sy[c] / cnt[c],
        r: Math.min(50, Math.max(6, 3 * Math.sqrt(size))),
        colour: clusterColour(name),
        alpha: stab === null ? 0.5 : 0.35 + 0.65 * stab,
        dashed: stab === null || stab < 0.5,
        label: rank < 8 ? `${size}${stab === null ? "" : ` · ${stab.toFixed(2)}`}` : null,
      });
    });
    s.rings = rings;
  }

  private markers(): void {
    const s = this.scatter;
    if (this.app.view !== "world") {
      s.markers = [];
      return;
    }
    const pts = this.pts;
    const latest = new Map<number, number>();
    for (let i = 0; i < pts.n; i++) {
      if (!pts.alive[i] || !Number.isFinite(pts.wx[i])) continue;
      const a = pts.agent[i];
      const j = latest.get(a);
      if (j === undefined || pts.ts[i] >= pts.ts[j]) latest.set(a, i);
    }
    s.markers = [...latest.values()].slice(0, 300).map((i) => ({ x: pts.wx[i], y: pts.wy[i], label: pts.agents[pts.agent[i]] }));
  }

  private legendUpdate(): void {
    const pts = this.pts;
    const by = this.app.colourBy;
    const items: [string, string, number][] = [];
    if (by === "cluster") {
      const cnt = new Map<number, number>();
      for (let i = 0; i < pts.n; i++) if (pts.alive[i]) cnt.set(pts.cluster[i], (cnt.get(pts.cluster[i]) ?? 0) + 1);
      const top = [...cnt].sort((a, b) => b[1] - a[1]);
      for (const [c, n] of top.slice(0, 12)) items.push([c < 0 ? "no cluster" : pts.clusters[c], c < 0 ? NONE : clusterColour(pts.clusters[c]), n]);
      if (top.length > 12) items.push([`… ${top.length - 12} more clusters`, "transparent", 0]);
    } else {
      const names = by === "type" ? pts.types : pts.states;
      const codes = by === "type" ? pts.type : pts.state;
      const palette = by === "type" ? TYPE_COLOURS : STATE_COLOURS;
      const cnt = new Array(names.length).fill(0);
      for (let i = 0; i < pts.n; i++) if (pts.alive[i]) cnt[codes[i]]++;
      names.forEach((nm, k) => cnt[k] && items.push([nm, palette[nm] ?? NONE, cnt[k]]));
    }
    this.legend.replaceChildren(
      ...items.map(([label, colour, n]) => {
        const i = el("i");
        i.style.background = colour;
        return el("span", {}, i, n ? `${label} (${n})` : label);
      }),
    );
  }

  showStat(): void {
    if (this.stat.classList.contains("error")) return;
    let alive = 0;
    for (let i = 0; i < this.pts.n; i++) alive += this.pts.alive[i];
    const total = Math.max(this.pts.total, alive);
    this.stat.textContent = `${this.ns}${this.agent ? " / " + this.agent : ""} · ${fmt(alive)} points of ${fmt(total)} · ${this.app.view}`;
  }

  private hovered(i: number): void {
    const tip = this.tip;
    if (i < 0) {
      tip.style.display = "none";
      return;
    }
    const pts = this.pts;
    const p = this.scatter.screenOf(i);
    tip.replaceChildren(
      el("b", {}, pts.agents[pts.agent[i]]),
      ` · ${pts.types[pts.type[i]]} · ${pts.states[pts.state[i]]}`,
      el("br"),
      pts.content[i],
    );
    if (p) {
      const dpr = this.scatter.dpr;
      const x = p[0] / dpr;
      const y = p[1] / dpr;
      tip.style.left = `${Math.min(x + 12, this.plot.clientWidth - 350)}px`;
      tip.style.top = `${Math.min(y + 12, this.plot.clientHeight - 80)}px`;
    }
    tip.style.display = "block";
    this.app.showMemory(this, i);
  }

  private clicked(i: number): void {
    const s = this.scatter;
    const c = i >= 0 ? this.pts.cluster[i] : -1;
    s.selectedCluster = c === s.selectedCluster ? -1 : c;
    s.request();
    if (i >= 0) this.app.showCluster(this, i);
  }
}

/** At least a minute of time axis. */
const xRange: uPlot.Range.Function = (_u, min, max) => {
  if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) {
    const now = Date.now() / 1000;
    return [now - 60, now];
  }
  return max - min < 60 ? [max - 60, max] : [min, max];
};

class App {
  api: Api;
  view: View = "embedding";
  colourBy: ColourBy = "cluster";
  limit = 5000;
  panes: Pane[] = [];
  logEntries: LogEntry[] = [];
  clusterHistory = new Map<string, string[]>();
  counterSeries: number[][] = [[], [], [], []];
  modelSeries: number[][] = [[], [], [], [], []];
  rateChart: uPlot | null = null;
  modelChart: uPlot | null = null;
  private analyticsTimer = 0;
  hooks: {
    ready: boolean;
    error: string | null;
    loads: number;
    sse: Record<string, number>;
    recalls: number;
    [k: string]: unknown;
  } = { ready: false, error: null, loads: 0, sse: {}, recalls: 0 };

  constructor() {
    const q = new URLSearchParams(location.search);
    this.api = new Api(q.get("token"));
    const limit = Number(q.get("limit"));
    if (limit > 0) this.limit = limit;
  }

  async start(): Promise<void> {
    const q = new URLSearchParams(location.search);
    const a = new Pane(this, "A", true);
    this.panes.push(a);
    $("panes").append(a.root);
    this.bind();
    this.charts();
    const nsSel = $<HTMLSelectElement>("ns");
    let namespaces: string[] = [];
    try {
      namespaces = await this.fillNamespaces(nsSel, q.get("namespace") ?? "");
    } catch (e) {
      this.hooks.error = errText(e);
      a.stat.textContent = `cannot list namespaces: ${errText(e)}`;
    }
    const ns = q.get("namespace") || namespaces[0] || "";
    nsSel.value = ns;
    await this.fillAgents($<HTMLSelectElement>("agent"), ns, q.get("agent_id") ?? "", true);
    await this.fillAgents($<HTMLSelectElement>("recall-agent"), ns, q.get("agent_id") ?? "");
    await a.setTarget(ns, $<HTMLSelectElement>("agent").value);
    this.pollAnalytics();
    if (!ns) this.waitForNamespaces();
    this.hooks.ready = true;
  }

  private async waitForNamespaces(): Promise<void> {
    const nsSel = $<HTMLSelectElement>("ns");
    const found = await this.fillNamespaces(nsSel, "").catch(() => [] as string[]);
    if (found.length) {
      nsSel.value = found[0];
      nsSel.dispatchEvent(new Event("change"));
    } else window.setTimeout(() => this.waitForNamespaces(), 3000);
  }

  async fillNamespaces(sel: HTMLSelectElement, want: string): Promise<string[]> {
    const { namespaces } = await this.api.get<{ namespaces: { namespace: string; memories: number }[] }>(
      "/dashboard/api/namespaces",
    );
    const names = namespaces.map((n) => n.namespace);
    if (want && !names.includes(want)) names.unshift(want);
    sel.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    return names;
  }

  async fillAgents(sel: HTMLSelectElement, ns: string, want: string, all = false): Promise<void> {
    let agents: string[] = [];
    if (ns) {
      try {
        const r = await this.api.get<{ agents: { agent_id: string; memories: number }[] }>("/dashboard/api/agents", {
          namespace: ns,
        });
        agents = r.agents.map((a) => a.agent_id);
      } catch {
        /* shown by the pane */
      }
    }
    if (want && !agents.includes(want)) agents.unshift(want);
    const opts = agents.map((a) => el("option", { value: a }, a));
    if (all) opts.unshift(el("option", { value: "" }, "all agents"));
    sel.replaceChildren(...opts);
    sel.value = want || (all ? "" : agents[0] ?? "");
  }

  private bind(): void {
    const nsSel = $<HTMLSelectElement>("ns");
    const agentSel = $<HTMLSelectElement>("agent");
    nsSel.onchange = async () => {
      await this.fillAgents(agentSel, nsSel.value, "", true);
      await this.fillAgents($<HTMLSelectElement>("recall-agent"), nsSel.value, "");
      this.modelSeries = [[], [], [], [], []];
      await this.panes[0].setTarget(nsSel.value, "");
    };
    agentSel.onchange = () => {
      if (agentSel.value) $<HTMLSelectElement>("recall-agent").value = agentSel.value;
      this.panes[0].setTarget(nsSel.value, agentSel.value);
    };
    $<HTMLSelectElement>("colour").onchange = (e) => {
      this.colourBy = (e.target as HTMLSelectElement).value as ColourBy;
      for (const p of this.panes) p.refresh();
    };
    $<HTMLSelectElement>("limit").value = String(this.limit);
    $<HTMLSelectElement>("limit").onchange = (e) => {
      this.limit = Number((e.target as HTMLSelectElement).value);
      for (const p of this.panes) p.load();
    };
    for (const b of $("view").querySelectorAll("button")) {
      b.addEventListener("click", () => {
        this.view = (b as HTMLElement).dataset.view as View;
        $("view").querySelectorAll("button").forEach((x) => x.classList.toggle("on", x === b));
        for (const p of this.panes) {
          p.scatter.autoFit = true;
          p.refresh(true);
        }
      });
    }
    $<HTMLInputElement>("compare").onchange = (e) => this.compare((e.target as HTMLInputElement).checked);
    $<HTMLFormElement>("recall").onsubmit = (e) => {
      e.preventDefault();
      this.recall();
    };
  }

  async compare(on: boolean): Promise<void> {
    if (!on) {
      const b = this.panes.pop();
      if (b && b !== this.panes[0]) {
        b.es?.close();
        b.root.remove();
      } else if (b) this.panes.push(b);
      return;
    }
    if (this.panes.length > 1) return;
    const b = new Pane(this, "B", false);
    this.panes.push(b);
    $("panes").append(b.root);
    const a = this.panes[0];
    await this.fillNamespaces(b.nsSel!, a.ns);
    b.nsSel!.value = a.ns;
    await this.fillAgents(b.agentSel!, a.ns, "", true);
    // another agent than A's, so the two are side by side
    const other = [...b.agentSel!.options].map((o) => o.value).find((v) => v && v !== a.agent);
    if (other) b.agentSel!.value = other;
    await b.setTarget(a.ns, b.agentSel!.value);
    a.refresh();
  }

  setLive(on: boolean): void {
    const live = $("live");
    live.classList.toggle("off", !on);
    live.textContent = on ? "● live" : "○ reconnecting";
  }

  log(kind: string, text: string, clusters: string[]): void {
    const entry = { kind, text, clusters, at: Date.now() };
    this.logEntries.push(entry);
    if (this.logEntries.length > 500) this.logEntries.shift();
    const li = el("li", {}, el("span", { class: `k ${kind}` }, kind), " ", text);
    const log = $("log");
    log.prepend(li);
    while (log.childElementCount > 200) log.lastElementChild!.remove();
  }

  history(it: ClusterItem): void {
    const line = `${new Date().toLocaleTimeString()} ${it.kind}${it.memory_id ? " " + it.memory_id : ""}${
      it.related.length ? " (" + it.related.join(", ") + ")" : ""
    } → size ${it.size}, stability ${it.stability.toFixed(2)}`;
    for (const id of [it.cluster_id, ...(it.kind === "merge" ? it.related : [])]) {
      const h = this.clusterHistory.get(id) ?? [];
      h.push(line);
      if (h.length > 50) h.shift();
      this.clusterHistory.set(id, h);
    }
  }

  counters(c: Counters): void {
    const box = $("counters");
    const p = c.latency?.publish_to_stored;
    const cells: [string, string, boolean][] = [
      ["events/s", fmt(c.events_per_s, 1), false],
      ["stored/s", fmt(c.stored_per_s, 1), false],
      ["lag", fmt(c.lag_total), c.lag_total > 1000],
      ["dead letters", fmt(c.dead_lettered), false],
      ["stored", fmt(c.stored), false],
      ["in RAM (L2)", fmt(c.hot_rows), false],
      ["recalls", fmt(c.recalls), false],
      ["decayed", fmt(c.decayed), false],
      ["publish→stored p50", p?.p50_ms == null ? "–" : `${fmt(p.p50_ms)} ms`, false],
    ];
    if ((c.workers ?? 1) > 1) cells.push(["workers", fmt(c.workers ?? 1), false]);
    box.replaceChildren(
      ...cells.map(([label, value, warn]) =>
        el("div", { class: warn ? "warn" : "", "data-counter": label }, el("b", {}, value), el("span", {}, label)),
      ),
    );
    const s = this.counterSeries;
    s[0].push(c.ts);
    s[1].push(c.events_per_s);
    s[2].push(c.stored_per_s);
    s[3].push(c.lag_total);
    if (s[0].length > 300) for (const a of s) a.shift();
    if (s[0].length >= 2) this.rateChart?.setData(s as uPlot.AlignedData); // 1 sample: uPlot spans years
    this.hooks.counters = c;
  }

  private charts(): void {
    const axis = { stroke: "#8a93b5", grid: { stroke: "#262d47", width: 1 }, ticks: { stroke: "#262d47" } };
    const width = Math.max(260, $("rate-chart").clientWidth || 380);
    this.rateChart = new uPlot(
      {
        width,
        height: 130,
        legend: { live: false },
        scales: { x: { time: true, range: xRange }, lag: { auto: true } },
        series: [
          {},
          { label: "events/s", stroke: "#6ea8fe", width: 1.5 },
          { label: "stored/s", stroke: "#5cd08d", width: 1.5 },
          { label: "lag", stroke: "#f1707b", width: 1, scale: "lag" },
        ],
        axes: [axis, axis, { ...axis, side: 1, scale: "lag", grid: { show: false } }],
      },
      this.counterSeries as uPlot.AlignedData,
      $("rate-chart"),
    );
    this.modelChart = new uPlot(
      {
        width,
        height: 130,
        legend: { live: false },
        scales: { x: { time: true, range: xRange } },
        series: [
          {},
          { label: "recall AUC", stroke: "#6ea8fe", width: 1.5 },
          { label: "prior AUC", stroke: "#6ea8fe", dash: [4, 3], width: 1 },
          { label: "importance MAE", stroke: "#f3b562", width: 1.5 },
          { label: "mean MAE", stroke: "#f3b562", dash: [4, 3], width: 1 },
        ],
        axes: [axis, axis],
      },
      this.modelSeries as uPlot.AlignedData,
      $("model-chart"),
    );
  }

  private pollAnalytics(): void {
    window.clearTimeout(this.analyticsTimer);
    const ns = this.panes[0]?.ns;
    const next = () => (this.analyticsTimer = window.setTimeout(() => this.pollAnalytics(), 5000));
    if (!ns) {
      next();
      return;
    }
    this.api
      .get<AnalyticsPayload>("/dashboard/api/analytics", { namespace: ns })
      .then((a) => this.showAnalytics(a))
      .catch((e) => ($("analytics").textContent = errText(e)))
      .finally(next);
  }

  private showAnalytics(a: AnalyticsPayload): void {
    const box = $("analytics");
    if (!a.enabled) {
      box.replaceChildren(el("p", { class: "muted" }, "The analytics stage is off on this worker (ARGOS_ANALYTICS=false)."));
      return;
    }
    if (!a.models.length) {
      box.replaceChildren(el("p", { class: "muted" }, "No analytics for this namespace yet."));
      return;
    }
    const rows = a.models.map((m) =>
      el(
        "tr",
        { "data-model": m.target },
        el("td", {}, m.target.replace("_", " "), el("br"), el("span", { class: "muted" }, `n ${fmt(m.n)}`)),
        el("td", { class: "num" }, `${m.metric} ${fmt(m.value, 3)}`),
        el("td", { class: "num" }, `${m.baseline}`, el("br"), fmt(m.baseline_value, 3)),
        el(
          "td",
          { class: m.beats_baseline ? "good" : m.beats_baseline === false ? "bad" : "muted", title: "beats its baseline" },
          m.beats_baseline === null ? "·" : m.beats_baseline ? "✔" : "✘",
        ),
      ),
    );
    const states = a.metrics["lifecycle_states"]?.values ?? {};
    const rates = a.metrics["event_rates"]?.values ?? {};
    box.replaceChildren(
      el(
        "table",
        {},
        el("tr", {}, ...["model", "score", "baseline", ""].map((h) => el("th", {}, h))),
        ...rows,
      ),
      el(
        "p",
        { class: "muted" },
        `states: ${Object.entries(states).map(([k, v]) => `${k} ${fmt(v)}`).join(" · ") || "–"}`,
        el("br"),
        `events/h (event time): ${fmt(rates["total_per_h"], 1)} · recalls/h ${fmt(rates["recalls_per_h"], 1)}`,
      ),
    );
    const get = (t: string) => a.models.find((m) => m.target === t);
    const r = get("recall_probability");
    const imp = get("importance");
    const s = this.modelSeries;
    s[0].push(Date.now() / 1000);
    s[1].push(r?.value ?? NaN);
    s[2].push(r?.baseline_value ?? NaN);
    s[3].push(imp?.value ?? NaN);
    s[4].push(imp?.baseline_value ?? NaN);
    if (s[0].length > 360) for (const x of s) x.shift();
    if (s[0].length >= 2)
      this.modelChart?.setData(s.map((x) => x.map((v) => (Number.isFinite(v) ? v : null))) as uPlot.AlignedData);
    this.hooks.analytics = a;
  }

  showMemory(pane: Pane, i: number): void {
    const pts = pane.pts;
    const c = pts.cluster[i];
    $("details").replaceChildren(
      el(
        "dl",
        {},
        el("dt", {}, "memory"),
        el("dd", {}, pts.ids[i]),
        el("dt", {}, "agent"),
        el("dd", {}, pts.agents[pts.agent[i]]),
        el("dt", {}, "type · state"),
        el("dd", {}, `${pts.types[pts.type[i]]} · ${pts.states[pts.state[i]]}`),
        el("dt", {}, "cluster"),
        el("dd", {}, c < 0 ? "none" : pts.clusters[c]),
        el("dt", {}, "when"),
        el("dd", {}, when(pts.ts[i])),
        el("dt", {}, "where"),
        el("dd", {}, Number.isFinite(pts.wx[i]) ? `${fmt(pts.wx[i], 1)}, ${fmt(pts.wy[i], 1)}` : "–"),
        el("dt", {}, "content"),
        el("dd", {}, pts.content[i]),
      ),
    );
  }

  async showCluster(pane: Pane, i: number): Promise<void> {
    const pts = pane.pts;
    const c = pts.cluster[i];
    const box = $("details");
    if (c < 0) {
      this.showMemory(pane, i);
      return;
    }
    const name = pts.clusters[c];
    const agent = pts.agents[pts.agent[i]];
    const members: number[] = [];
    for (let j = 0; j < pts.n; j++) if (pts.cluster[j] === c && pts.alive[j]) members.push(j);
    const head = el("p", {}, el("b", {}, name), ` (${agent}) · ${members.length} in view`);
    const info = el("p", { class: "muted" }, "loading the cluster…");
    const hist = this.clusterHistory.get(name) ?? [];
    box.replaceChildren(
      head,
      info,
      el("p", {}, "Members:"),
      el("ul", {}, ...members.slice(0, 6).map((j) => el("li", {}, pts.content[j]))),
      el("p", {}, `History (seen live): ${hist.length ? "" : "nothing yet"}`),
      el("ol", { class: "log" }, ...hist.slice(-12).map((h) => el("li", {}, h))),
    );
    try {
      const { clusters } = await this.api.get<{ clusters: ClusterSummary[] }>("/clusters", {
        namespace: pane.ns,
        agent_id: agent,
      });
      const s = clusters.find((x) => x.cluster_id === name);
      info.textContent = s
        ? `size ${s.size} · radius ${fmt(s.radius, 3)} · stability ${fmt(s.stability, 2)}` +
          (typeof s.created_ts === "number" ? ` · formed ${when(s.created_ts)}` : "") +
          (typeof s.changed_ts === "number" ? ` · changed ${when(s.changed_ts)}` : "")
        : "no longer a live cluster (merged, split or emptied)";
    } catch (e) {
      info.textContent = errText(e);
    }
  }

  async recall(): Promise<void> {
    const a = this.panes[0];
    const out = $("recall-out");
    const agent = $<HTMLSelectElement>("recall-agent").value;
    const query = $<HTMLInputElement>("recall-query").value.trim();
    const k = Number($<HTMLInputElement>("recall-k").value) || 8;
    if (!agent || !query) return;
    out.replaceChildren(el("p", { class: "muted" }, "recalling…"));
    try {
      const r = await this.api.recall({ namespace: a.ns, agent_id: agent, query, k });
      this.hooks.recalls++;
      this.showHits(r.hits, r.took_ms);
    } catch (e) {
      out.replaceChildren(el("p", { class: "error" }, errText(e)));
    }
  }

  private showHits(hits: RecallHit[], took: number): void {
    const a = this.panes[0];
    const out = $("recall-out");
    a.scatter.highlights = hits.map((h) => a.pts.find(h.memory_id)).filter((i) => i >= 0);
    a.scatter.requestOverlay();
    if (!hits.length) {
      out.replaceChildren(el("p", { class: "muted" }, `nothing recalled (${fmt(took, 1)} ms)`));
      return;
    }
    const rows = hits.map((h, rank) => {
      const p = h.parts ?? { relevance: 0, recency: 0, importance: 0 };
      const sum = p.relevance + p.recency + p.importance || 1;
      const bar = el("div", { class: "parts", title: "relevance · recency · importance" });
      for (const v of [p.relevance, p.recency, p.importance]) {
        const seg = el("i");
        seg.style.width = `${(100 * Math.max(v, 0)) / sum}%`;
        bar.append(seg);
      }
      const tr = el(
        "tr",
        { "data-memory": h.memory_id },
        el("td", { class: "num" }, String(rank + 1)),
        el("td", { class: "num" }, fmt(h.score, 3), bar),
        el(
          "td",
          {},
          h.content,
          el("br"),
          el("span", { class: "muted" }, `rel ${fmt(p.relevance, 2)} · rec ${fmt(p.recency, 2)} · imp ${fmt(p.importance, 2)} · ${h.type} · ${h.state}`),
        ),
      );
      tr.onclick = () => {
        const i = a.pts.find(h.memory_id);
        if (i >= 0) this.showMemory(a, i);
      };
      return tr;
    });
    out.replaceChildren(el("p", { class: "muted" }, `${hits.length} memories in ${fmt(took, 1)} ms`), el("table", {}, ...rows));
  }
}

// -- hooks for the browser test and the benchmark ---------------------------------------------

const app = new App();
const hooks = app.hooks;
Object.assign(hooks, {
  panes: () =>
    app.panes.map((p) => ({
      name: p.name,
      namespace: p.ns,
      agent: p.agent,
      n: p.pts.n,
      drawn: p.scatter.drawn,
      renders: p.scatter.renders,
      lastRenderMs: p.scatter.lastRenderMs,
      firstRenderAt: p.scatter.firstRenderAt,
      loadMs: p.loadMs,
      pointSize: p.scatter.pointSize,
    })),
  has: (id: string, pane = 0) => {
    const p = app.panes[pane];
    const i = p ? p.pts.find(id) : -1;
    return i >= 0 && p.pts.alive[i] === 1 && p.scatter.screenOf(i) !== null;
  },
  idAt: (k: number, pane = 0) => app.panes[pane]?.pts.ids[k] ?? null,
  clusterOf: (id: string, pane = 0) => {
    const p = app.panes[pane];
    const i = p ? p.pts.find(id) : -1;
    return i >= 0 && p.pts.cluster[i] >= 0 ? p.pts.clusters[p.pts.cluster[i]] : null;
  },
  screenOf: (id: string, pane = 0) => {
    const p = app.panes[pane];
    const i = p ? p.pts.find(id) : -1;
    return i >= 0 ? p.scatter.screenOf(i) : null;
  },
  /** Frame timings: synchronous renders while zooming, then frames through rAF while panning. */
  bench: async (frames = 60) => {
    const s = app.panes[0].scatter;
    const cpu: number[] = [];
    for (let k = 0; k < frames; k++) {
      s.zoomAt(s.W / 2, s.H / 2, k < frames / 2 ? 1.02 : 1 / 1.02);
      cpu.push(s.render());
    }
    const intervals: number[] = await new Promise((done) => {
      const iv: number[] = [];
      let last = -1;
      let k = 0;
      const step = (t: number) => {
        if (last >= 0) iv.push(t - last);
        last = t;
        s.cx += 3 / s.scale;
        s.render();
        if (++k <= frames) requestAnimationFrame(step);
        else done(iv);
      };
      requestAnimationFrame(step);
    });
    return { cpu, intervals, pointSize: s.pointSize, drawn: s.drawn, width: s.W, height: s.H };
  },
});
(window as unknown as { __argosDash: typeof hooks }).__argosDash = hooks;
app.start().catch((e) => {
  hooks.error = String(e);
  console.error(e);
});
