// The points of one pane, in growable typed arrays (drawing 100k of them reads only these).

import type { ClusterItem, LifecycleItem, PointsPayload } from "./api";

const GONE = new Set(["decayed", "deleted"]);

function grow<T extends Float32Array | Float64Array | Int32Array | Uint8Array>(a: T, cap: number): T {
  const b = new (a.constructor as { new (n: number): T })(cap);
  b.set(a.subarray(0, Math.min(a.length, cap)));
  return b;
}

export class PointSet {
  n = 0;
  cap = 0;
  x = new Float32Array(0); // embedding projection
  y = new Float32Array(0);
  wx = new Float32Array(0); // world position (NaN: unknown)
  wy = new Float32Array(0);
  ts = new Float64Array(0);
  agent = new Int32Array(0);
  cluster = new Int32Array(0);
  type = new Uint8Array(0);
  state = new Uint8Array(0);
  alive = new Uint8Array(0);
  ids: string[] = [];
  content: string[] = [];
  agents: string[] = [];
  clusters: string[] = [];
  types: string[] = ["episodic", "semantic", "procedural"];
  states: string[] = ["created", "active", "consolidated", "decayed", "archived", "deleted"];
  total = 0;
  version = 0; // bumps on every change (colours, legend)
  private index = new Map<string, number>();
  private agentCode = new Map<string, number>();
  private clusterCode = new Map<string, number>();
  private pendingCluster = new Map<string, string | null>();
  private pendingState = new Map<string, string>();
  /** Latest size and stability of clusters seen in live events. */
  clusterInfo = new Map<string, { size: number; stability: number; radius: number }>();

  private reserve(need: number): void {
    if (need <= this.cap) return;
    const cap = Math.max(need, Math.ceil(this.cap * 1.5) + 64);
    this.x = grow(this.x, cap);
    this.y = grow(this.y, cap);
    this.wx = grow(this.wx, cap);
    this.wy = grow(this.wy, cap);
    this.ts = grow(this.ts, cap);
    this.agent = grow(this.agent, cap);
    this.cluster = grow(this.cluster, cap);
    this.type = grow(this.type, cap);
    this.state = grow(this.state, cap);
    this.alive = grow(this.alive, cap);
    this.cap = cap;
  }

  clear(): void {
    this.n = 0;
    this.ids = [];
    this.content = [];
    this.index.clear();
    this.version++;
  }

  agentOf(name: string): number {
    let c = this.agentCode.get(name);
    if (c === undefined) {
      c = this.agents.length;
      this.agents.push(name);
      this.agentCode.set(name, c);
    }
    return c;
  }

  clusterOf(name: string | null): number {
    if (name === null) return -1;
    let c = this.clusterCode.get(name);
    if (c === undefined) {
      c = this.clusters.length;
      this.clusters.push(name);
      this.clusterCode.set(name, c);
    }
    return c;
  }

  stateCode(name: string): number {
    const i = this.states.indexOf(name);
    return i < 0 ? 1 : i;
  }

  /** Replace everything with a /points payload. */
  load(p: PointsPayload): void {
    this.clear();
    this.total = p.total ?? p.n;
    this.merge(p);
  }

  /** Add (or update) the points of a payload; returns the indexes of new points. */
  merge(p: PointsPayload): number[] {
    this.reserve(this.n + p.n);
    const fresh: number[] = [];
    for (let j = 0; j < p.n; j++) {
      const id = p.memory_id[j];
      let i = this.index.get(id);
      if (i === undefined) {
        i = this.n++;
        this.index.set(id, i);
        this.ids[i] = id;
        fresh.push(i);
      }
      this.content[i] = p.content[j];
      this.x[i] = p.x[j] ?? NaN;
      this.y[i] = p.y[j] ?? NaN;
      this.wx[i] = p.wx[j] ?? NaN;
      this.wy[i] = p.wy[j] ?? NaN;
      this.ts[i] = p.event_ts[j] ?? NaN;
      this.agent[i] = this.agentOf(p.agents[p.agent[j]]);
      const cname = p.cluster[j] < 0 ? null : p.clusters[p.cluster[j]];
      const pendingC = this.pendingCluster.get(id);
      this.cluster[i] = this.clusterOf(pendingC !== undefined ? pendingC : cname);
      this.pendingCluster.delete(id);
      this.type[i] = Math.max(0, this.types.indexOf(p.types[p.type[j]]));
      const sname = this.pendingState.get(id) ?? p.states[p.state[j]];
      this.pendingState.delete(id);
      this.state[i] = this.stateCode(sname);
      this.alive[i] = GONE.has(sname) ? 0 : 1;
    }
    this.version++;
    return fresh;
  }

  find(id: string): number {
    return this.index.get(id) ?? -1;
  }

  /** Apply lifecycle transitions; returns those worth logging. */
  lifecycle(items: LifecycleItem[]): LifecycleItem[] {
    const notable: LifecycleItem[] = [];
    for (const it of items) {
      const i = this.find(it.memory_id);
      if (i < 0) this.pendingState.set(it.memory_id, it.to_state);
      else {
        this.state[i] = this.stateCode(it.to_state);
        if (GONE.has(it.to_state)) this.alive[i] = 0;
      }
      if (it.to_state !== "active" || it.cause === "duplicate") notable.push(it);
    }
    this.version++;
    return notable;
  }

  /** Apply cluster changes; returns merges and splits (and true if a split needs a resync). */
  clusterEvents(items: ClusterItem[]): { notable: ClusterItem[]; resync: boolean } {
    const notable: ClusterItem[] = [];
    let resync = false;
    for (const it of items) {
      this.clusterInfo.set(it.cluster_id, { size: it.size, stability: it.stability, radius: it.radius });
      if ((it.kind === "join" || it.kind === "create") && it.memory_id) {
        const i = this.find(it.memory_id);
        if (i < 0) this.pendingCluster.set(it.memory_id, it.cluster_id);
        else this.cluster[i] = this.clusterOf(it.cluster_id);
      } else if (it.kind === "remove" && it.memory_id) {
        const i = this.find(it.memory_id);
        if (i >= 0) this.cluster[i] = -1;
      } else if (it.kind === "merge") {
        const to = this.clusterOf(it.cluster_id);
        const gone = new Set(it.related.map((r) => this.clusterOf(r)));
        for (let i = 0; i < this.n; i++) if (gone.has(this.cluster[i])) this.cluster[i] = to;
        for (const r of it.related) this.clusterInfo.delete(r);
        notable.push(it);
      } else if (it.kind === "split") {
        notable.push(it); // which members moved is not in the event: fetch the points again
        resync = true;
      }
    }
    this.version++;
    return { notable, resync };
  }
}
