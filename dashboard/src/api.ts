// Talking to the worker: the dashboard API (token as a header, or as ?token= where a header
// cannot be sent: EventSource) and the recall API (POST /recall with the Authorization header).

export class ApiError extends Error {
  constructor(
    public status: number,
    public body: unknown,
  ) {
    super(`HTTP ${status}: ${typeof body === "string" ? body : JSON.stringify(body)}`);
  }
}

export interface PointsPayload {
  n: number;
  x: (number | null)[];
  y: (number | null)[];
  wx: (number | null)[];
  wy: (number | null)[];
  memory_id: string[];
  agent: number[];
  agents: string[];
  cluster: number[];
  clusters: string[];
  type: number[];
  types: string[];
  state: number[];
  states: string[];
  content: string[];
  event_ts: (number | null)[];
  total?: number;
  limit?: number;
  projection?: { version: number; rows_learnt: number };
}

export interface LifecycleItem {
  memory_id: string;
  agent_id: string;
  from_state: string;
  to_state: string;
  cause: string | null;
  event_ts: number;
  recalls: number;
  related: string[];
}

export interface ClusterItem {
  kind: "create" | "join" | "merge" | "split" | "remove";
  agent_id: string;
  cluster_id: string;
  memory_id: string | null;
  size: number;
  radius: number;
  stability: number;
  event_ts: number;
  related: string[];
}

export interface Counters {
  ts: number;
  events_per_s: number;
  stored_per_s: number;
  ingested: number;
  stored: number;
  dead_lettered: number;
  recalls: number;
  denied: number;
  decayed: number;
  archived: number;
  derived: number;
  strengthened: number;
  lag_total: number;
  hot_rows: number;
  workers?: number; // how many workers the counters are summed over
  watchers: number;
  feed_dropped: number;
  uptime_s: number;
  latency: Record<string, { p50_ms: number | null; p99_ms: number | null; n: number }>;
}

export interface RecallHit {
  memory_id: string;
  agent_id: string;
  type: string;
  content: string;
  score: number;
  parts: { relevance: number; recency: number; importance: number } | null;
  state: string;
  cluster_id: string | null;
  event_time: string;
}

export interface ClusterSummary {
  cluster_id: string;
  size: number;
  radius: number;
  stability: number;
  [k: string]: unknown;
}

export interface ModelScore {
  target: string;
  metric: string;
  value: number | null;
  n: number;
  higher_is_better: boolean;
  baseline: string;
  baseline_value: number | null;
  beats_baseline: boolean | null;
}

export interface AnalyticsPayload {
  enabled: boolean;
  models: ModelScore[];
  metrics: Record<string, { kind: string; values: Record<string, number>; n: number }>;
}

export class Api {
  constructor(
    public token: string | null,
    public base = "",
  ) {}

  private headers(json = false): Record<string, string> {
    const h: Record<string, string> = {};
    if (this.token) h["Authorization"] = `Bearer ${this.token}`;
    if (json) h["Content-Type"] = "application/json";
    return h;
  }

  url(path: string, query: Record<string, string | number | null | undefined> = {}): string {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== null && v !== undefined && v !== "") q.set(k, String(v));
    const s = q.toString();
    return `${this.base}${path}${s ? "?" + s : ""}`;
  }

  async get<T>(path: string, query: Record<string, string | number | null | undefined> = {}): Promise<T> {
    const resp = await fetch(this.url(path, query), { headers: this.headers(), cache: "no-store" });
    return this.read<T>(resp);
  }

  async recall(body: Record<string, unknown>): Promise<{ hits: RecallHit[]; took_ms: number }> {
    const resp = await fetch(`${this.base}/recall`, {
      method: "POST",
      headers: this.headers(true),
      body: JSON.stringify(body),
    });
    return this.read(resp);
  }

  /** An EventSource cannot send headers: the token goes in the query. */
  events(query: Record<string, string | null>): EventSource {
    return new EventSource(this.url("/dashboard/api/events", { ...query, token: this.token }));
  }

  private async read<T>(resp: Response): Promise<T> {
    const text = await resp.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    if (!resp.ok) throw new ApiError(resp.status, body);
    return body as T;
  }
}
