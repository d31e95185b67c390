// A scatter plot for up to ~100k points: positions and colours in typed arrays, drawn into one
// ImageData buffer (no per-point canvas calls), a spatial grid for hovering, and level of
// detail (point size from the on-screen density). Overlays (hover, selection, new points,
// cluster rings, agents) go on a second canvas redrawn on its own.

import { BG, mix, word } from "./colours";
import type { PointSet } from "./points";

export type View = "embedding" | "world";

export interface Ring {
  x: number;
  y: number;
  r: number;
  colour: string;
  alpha: number;
  dashed: boolean;
  label: string | null;
}

export class Scatter {
  readonly canvas: HTMLCanvasElement;
  readonly overlay: HTMLCanvasElement;
  private ctx: CanvasRenderingContext2D;
  private octx: CanvasRenderingContext2D;
  pts: PointSet;
  view: View = "embedding";
  colours = new Uint32Array(0); // per point
  dimmed = new Uint32Array(0);
  selectedCluster = -1;
  hover = -1;
  highlights: number[] = [];
  rings: Ring[] = [];
  markers: { x: number; y: number; label: string }[] = [];
  private flashes = new Map<number, number>(); // point -> time it arrived
  // view transform: data -> device pixels
  cx = 0;
  cy = 0;
  scale = 1;
  autoFit = true;
  W = 0;
  H = 0;
  dpr = 1;
  private img: ImageData | null = null;
  private buf = new Uint32Array(0);
  private bg = word(BG);
  // screen positions of the points drawn, and a grid over them
  private sx = new Float32Array(0);
  private sy = new Float32Array(0);
  private cell = 16;
  private gw = 0;
  private gh = 0;
  private cellStart = new Int32Array(0);
  private cellItems = new Int32Array(0);
  drawn = 0;
  pointSize = 1;
  // timings (read by the tests and the benchmark)
  renders = 0;
  lastRenderMs = 0;
  totalRenderMs = 0;
  firstRenderAt = -1; // performance.now() of the first render with points
  private dirty = false;
  private overlayDirty = false;
  private raf = 0;
  onHover: ((i: number) => void) | null = null;
  onClick: ((i: number) => void) | null = null;
  onViewChange: (() => void) | null = null;

  constructor(parent: HTMLElement, pts: PointSet) {
    this.pts = pts;
    this.canvas = document.createElement("canvas");
    this.overlay = document.createElement("canvas");
    this.overlay.className = "overlay";
    parent.append(this.canvas, this.overlay);
    this.ctx = this.canvas.getContext("2d", { alpha: false })!;
    this.octx = this.overlay.getContext("2d")!;
    this.listen();
    new ResizeObserver(() => this.request()).observe(parent);
  }

  // -- data ------------------------------------------------------------------------------------

  xs(): Float32Array {
    return this.view === "embedding" ? this.pts.x : this.pts.wx;
  }

  ys(): Float32Array {
    return this.view === "embedding" ? this.pts.y : this.pts.wy;
  }

  setColours(colours: string[], of: (i: number) => number): void {
    const words = colours.map((c) => word(c));
    const dim = colours.map((c) => mix(c, BG, 0.78));
    const n = this.pts.n;
    if (this.colours.length < this.pts.cap) {
      this.colours = new Uint32Array(this.pts.cap);
      this.dimmed = new Uint32Array(this.pts.cap);
    }
    for (let i = 0; i < n; i++) {
      const k = of(i);
      this.colours[i] = words[k];
      this.dimmed[i] = dim[k];
    }
    this.request();
  }

  flash(indexes: number[]): void {
    const now = performance.now();
    for (const i of indexes) this.flashes.set(i, now);
    if (this.flashes.size > 2000) {
      const keep = [...this.flashes].slice(-1000);
      this.flashes = new Map(keep);
    }
    this.requestOverlay();
  }

  fit(): void {
    const X = this.xs();
    const Y = this.ys();
    const n = this.pts.n;
    const step = Math.max(1, Math.floor(n / 5000));
    const xs: number[] = [];
    const ys: number[] = [];
    for (let i = 0; i < n; i += step) {
      if (this.pts.alive[i] && Number.isFinite(X[i]) && Number.isFinite(Y[i])) {
        xs.push(X[i]);
        ys.push(Y[i]);
      }
    }
    this.resize();
    if (xs.length === 0) {
      this.cx = this.cy = 0;
      this.scale = 1;
      this.request();
      return;
    }
    xs.sort((a, b) => a - b);
    ys.sort((a, b) => a - b);
    const q = (a: number[], p: number) => a[Math.min(a.length - 1, Math.max(0, Math.round(p * (a.length - 1))))];
    const lo = xs.length > 200 ? 0.005 : 0;
    const x0 = q(xs, lo), x1 = q(xs, 1 - lo), y0 = q(ys, lo), y1 = q(ys, 1 - lo);
    this.cx = (x0 + x1) / 2;
    this.cy = (y0 + y1) / 2;
    const sx = (this.W * 0.9) / Math.max(x1 - x0, 1e-9);
    const sy = (this.H * 0.9) / Math.max(y1 - y0, 1e-9);
    this.scale = x1 - x0 < 1e-9 && y1 - y0 < 1e-9 ? 1 : Math.min(sx, sy);
    this.request();
  }

  // -- drawing ---------------------------------------------------------------------------------

  request(): void {
    this.dirty = true;
    this.schedule();
  }

  requestOverlay(): void {
    this.overlayDirty = true;
    this.schedule();
  }

  private schedule(): void {
    if (!this.raf) {
      this.raf = requestAnimationFrame(() => {
        this.raf = 0;
        if (this.dirty) this.render();
        else if (this.overlayDirty) this.renderOverlay();
      });
    }
  }

  private resize(): boolean {
    const dpr = Math.min(window.devicePixelRatio || 1, 2);
    const w = Math.max(1, Math.floor(this.canvas.clientWidth * dpr));
    const h = Math.max(1, Math.floor(this.canvas.clientHeight * dpr));
    if (w === this.W && h === this.H && this.img) return false;
    this.W = w;
    this.H = h;
    this.dpr = dpr;
    this.canvas.width = this.overlay.width = w;
    this.canvas.height = this.overlay.height = h;
    this.img = this.ctx.createImageData(w, h);
    this.buf = new Uint32Array(this.img.data.buffer);
    return true;
  }

  /** Draw every point now (synchronous; returns the milliseconds it took). */
  render(): number {
    const t0 = performance.now();
    this.dirty = false;
    if (this.resize() && this.autoFit && this.pts.n) this.fit();
    const { W, H, buf, pts } = this;
    buf.fill(this.bg);
    const n = pts.n;
    if (this.sx.length < n) {
      this.sx = new Float32Array(pts.cap);
      this.sy = new Float32Array(pts.cap);
    }
    const X = this.xs();
    const Y = this.ys();
    const alive = pts.alive;
    const s = this.scale;
    const ox = W / 2 - this.cx * s;
    const oy = H / 2 + this.cy * s;
    const sx = this.sx;
    const sy = this.sy;
    // screen positions; count what falls on screen (for the level of detail)
    let onScreen = 0;
    for (let i = 0; i < n; i++) {
      const px = X[i] * s + ox;
      const py = oy - Y[i] * s;
      if (alive[i] && px >= 0 && py >= 0 && px < W && py < H) {
        sx[i] = px;
        sy[i] = py;
        onScreen++;
      } else {
        sx[i] = -1;
      }
    }
    // level of detail: bigger points when few share the screen
    const density = onScreen / ((W * H) / (this.dpr * this.dpr));
    const size = density > 0.03 ? 1 : density > 0.008 ? 2 : density > 0.002 ? 3 : density > 0.0002 ? 4 : 6;
    this.pointSize = size;
    const d = Math.max(1, Math.round(size * this.dpr));
    const half = d >> 1;
    const sel = this.selectedCluster;
    const cl = pts.cluster;
    const colours = this.colours;
    const dimmed = this.dimmed;
    const paint = (i: number, c: number) => {
      const x0 = (sx[i] | 0) - half;
      const y0 = (sy[i] | 0) - half;
      if (d === 1) {
        buf[y0 * W + x0] = c;
        return;
      }
      const xa = x0 < 0 ? 0 : x0;
      const ya = y0 < 0 ? 0 : y0;
      const xb = x0 + d > W ? W : x0 + d;
      const yb = y0 + d > H ? H : y0 + d;
      for (let yy = ya; yy < yb; yy++) {
        const row = yy * W;
        for (let xx = xa; xx < xb; xx++) buf[row + xx] = c;
      }
    };
    if (sel < 0) {
      for (let i = 0; i < n; i++) if (sx[i] >= 0) paint(i, colours[i]);
    } else {
      for (let i = 0; i < n; i++) if (sx[i] >= 0 && cl[i] !== sel) paint(i, dimmed[i]);
      for (let i = 0; i < n; i++) if (sx[i] >= 0 && cl[i] === sel) paint(i, colours[i]);
    }
    this.ctx.putImageData(this.img!, 0, 0);
    this.index(n, onScreen);
    this.drawn = onScreen;
    const ms = performance.now() - t0;
    this.renders++;
    this.lastRenderMs = ms;
    this.totalRenderMs += ms;
    if (this.firstRenderAt < 0 && onScreen > 0) this.firstRenderAt = performance.now();
    this.renderOverlay();
    return ms;
  }

  /** Counting sort of the drawn points into grid cells (for hovering). */
  private index(n: number, count: number): void {
    const cell = Math.round(this.cell * this.dpr);
    this.gw = Math.ceil(this.W / cell);
    this.gh = Math.ceil(this.H / cell);
    const cells = this.gw * this.gh;
    if (this.cellStart.length < cells + 1) this.cellStart = new Int32Array(cells + 1);
    else this.cellStart.fill(0, 0, cells + 1);
    if (this.cellItems.length < count) this.cellItems = new Int32Array(Math.max(count, 1024));
    const start = this.cellStart;
    const sx = this.sx;
    const sy = this.sy;
    const gw = this.gw;
    for (let i = 0; i < n; i++) {
      if (sx[i] >= 0) start[((sy[i] / cell) | 0) * gw + ((sx[i] / cell) | 0) + 1]++;
    }
    for (let c = 0; c < cells; c++) start[c + 1] += start[c];
    const cursor = start.slice(0, cells);
    for (let i = 0; i < n; i++) {
      if (sx[i] >= 0) this.cellItems[cursor[((sy[i] / cell) | 0) * gw + ((sx[i] / cell) | 0)]++] = i;
    }
  }

  /** The drawn point nearest to device pixel (x, y), within ``r`` pixels; -1 if none. */
  nearest(x: number, y: number, r = 10 * this.dpr): number {
    const cell = Math.round(this.cell * this.dpr);
    const cx = (x / cell) | 0;
    const cy = (y / cell) | 0;
    const reach = Math.ceil(r / cell);
    let best = -1;
    let bestD = r * r;
    for (let gy = cy - reach; gy <= cy + reach; gy++) {
      if (gy < 0 || gy >= this.gh) continue;
      for (let gx = cx - reach; gx <= cx + reach; gx++) {
        if (gx < 0 || gx >= this.gw) continue;
        const c = gy * this.gw + gx;
        for (let k = this.cellStart[c]; k < this.cellStart[c + 1]; k++) {
          const i = this.cellItems[k];
          const dx = this.sx[i] - x;
          const dy = this.sy[i] - y;
          const dd = dx * dx + dy * dy;
          if (dd <= bestD) {
            bestD = dd;
            best = i;
          }
        }
      }
    }
    return best;
  }

  /** Device-pixel position of point i in the current view (null if off screen). */
  screenOf(i: number): [number, number] | null {
    const X = this.xs()[i];
    const Y = this.ys()[i];
    if (!Number.isFinite(X) || !Number.isFinite(Y)) return null;
    return [X * this.scale + this.W / 2 - this.cx * this.scale, this.H / 2 + this.cy * this.scale - Y * this.scale];
  }

  toScreen(x: number, y: number): [number, number] {
    return [(x - this.cx) * this.scale + this.W / 2, this.H / 2 - (y - this.cy) * this.scale];
  }

  renderOverlay(): void {
    this.overlayDirty = false;
    const g = this.octx;
    const dpr = this.dpr;
    g.clearRect(0, 0, this.W, this.H);
    g.lineWidth = 1.5 * dpr;
    g.font = `${11 * dpr}px system-ui, sans-serif`;
    for (const r of this.rings) {
      const [x, y] = this.toScreen(r.x, r.y);
      if (x < -100 || y < -100 || x > this.W + 100 || y > this.H + 100) continue;
      g.globalAlpha = r.alpha;
      g.strokeStyle = r.colour;
      g.setLineDash(r.dashed ? [4 * dpr, 3 * dpr] : []);
      g.beginPath();
      g.arc(x, y, r.r * dpr, 0, Math.PI * 2);
      g.stroke();
      if (r.label) {
        g.fillStyle = r.colour;
        g.fillText(r.label, x + r.r * dpr + 3 * dpr, y);
      }
    }
    g.setLineDash([]);
    g.globalAlpha = 1;
    for (const m of this.markers) {
      const [x, y] = this.toScreen(m.x, m.y);
      if (x < 0 || y < 0 || x > this.W || y > this.H) continue;
      g.fillStyle = "#ffffff";
      g.beginPath();
      g.moveTo(x, y - 6 * dpr);
      g.lineTo(x + 5 * dpr, y + 4 * dpr);
      g.lineTo(x - 5 * dpr, y + 4 * dpr);
      g.closePath();
      g.fill();
      g.fillStyle = "#dfe4f5";
      g.fillText(m.label, x + 7 * dpr, y + 4 * dpr);
    }
    // new points: a ring that widens and fades over 2.5 s
    const now = performance.now();
    let live = false;
    for (const [i, t] of this.flashes) {
      const age = (now - t) / 2500;
      if (age >= 1) {
        this.flashes.delete(i);
        continue;
      }
      const p = this.screenOf(i);
      if (!p || !this.pts.alive[i]) continue;
      live = true;
      g.globalAlpha = 1 - age;
      g.strokeStyle = "#ffffff";
      g.beginPath();
      g.arc(p[0], p[1], (4 + 14 * age) * dpr, 0, Math.PI * 2);
      g.stroke();
    }
    g.globalAlpha = 1;
    g.strokeStyle = "#ffd866";
    g.lineWidth = 2 * dpr;
    for (const i of this.highlights) {
      const p = this.screenOf(i);
      if (!p) continue;
      g.beginPath();
      g.arc(p[0], p[1], 7 * dpr, 0, Math.PI * 2);
      g.stroke();
    }
    if (this.hover >= 0) {
      const p = this.screenOf(this.hover);
      if (p) {
        g.strokeStyle = "#ffffff";
        g.beginPath();
        g.arc(p[0], p[1], 6 * dpr, 0, Math.PI * 2);
        g.stroke();
      }
    }
    if (live) this.requestOverlay();
  }

  // -- interaction -----------------------------------------------------------------------------

  private listen(): void {
    const c = this.canvas;
    let drag: { x: number; y: number; cx: number; cy: number; moved: boolean } | null = null;
    const dev = (e: MouseEvent): [number, number] => {
      const b = c.getBoundingClientRect();
      return [(e.clientX - b.left) * this.dpr, (e.clientY - b.top) * this.dpr];
    };
    c.addEventListener("pointerdown", (e) => {
      const [x, y] = dev(e);
      drag = { x, y, cx: this.cx, cy: this.cy, moved: false };
      c.setPointerCapture(e.pointerId);
    });
    c.addEventListener("pointermove", (e) => {
      const [x, y] = dev(e);
      if (drag) {
        const dx = x - drag.x;
        const dy = y - drag.y;
        if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
        if (drag.moved) {
          this.autoFit = false;
          this.cx = drag.cx - dx / this.scale;
          this.cy = drag.cy + dy / this.scale;
          this.request();
          this.onViewChange?.();
          return;
        }
      }
      const i = this.nearest(x, y);
      if (i !== this.hover) {
        this.hover = i;
        this.requestOverlay();
        this.onHover?.(i);
      }
    });
    c.addEventListener("pointerup", (e) => {
      const wasDrag = drag?.moved;
      drag = null;
      c.releasePointerCapture(e.pointerId);
      if (!wasDrag) {
        const [x, y] = dev(e);
        this.onClick?.(this.nearest(x, y));
      }
    });
    c.addEventListener("pointerleave", () => {
      if (this.hover >= 0) {
        this.hover = -1;
        this.requestOverlay();
        this.onHover?.(-1);
      }
    });
    c.addEventListener(
      "wheel",
      (e) => {
        e.preventDefault();
        const [x, y] = dev(e);
        this.zoomAt(x, y, Math.exp(-e.deltaY * 0.0015));
      },
      { passive: false },
    );
    c.addEventListener("dblclick", () => {
      this.autoFit = true;
      this.fit();
    });
  }

  zoomAt(x: number, y: number, factor: number): void {
    const dataX = this.cx + (x - this.W / 2) / this.scale;
    const dataY = this.cy - (y - this.H / 2) / this.scale;
    this.scale *= factor;
    this.cx = dataX - (x - this.W / 2) / this.scale;
    this.cy = dataY + (y - this.H / 2) / this.scale;
    this.autoFit = false;
    this.request();
    this.onViewChange?.();
  }
}
