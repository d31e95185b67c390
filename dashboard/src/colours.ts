// Colours as little-endian RGBA words (what a Uint32Array view of ImageData holds).

export function rgb(hex: string): [number, number, number] {
  const v = parseInt(hex.slice(1), 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

export function word(hex: string, alpha = 255): number {
  const [r, g, b] = rgb(hex);
  return ((alpha << 24) | (b << 16) | (g << 8) | r) >>> 0;
}

/** ``a`` mixed toward ``b`` by ``t`` (0..1), as a word. */
export function mix(a: string, b: string, t: number): number {
  const x = rgb(a);
  const y = rgb(b);
  const m = (i: number) => Math.round(x[i] * (1 - t) + y[i] * t);
  return ((255 << 24) | (m(2) << 16) | (m(1) << 8) | m(0)) >>> 0;
}

export const BG = "#0b0f1b";
export const NONE = "#5b6384";

// 24 colours that stay apart on a dark background
export const PALETTE = [
  "#6ea8fe", "#f3b562", "#5cd08d", "#f1707b", "#c38bff", "#4fd1d9", "#ffd866", "#ff8fc7",
  "#9ad25a", "#7f8cff", "#ff9f5a", "#41b883", "#e26bff", "#5ac8fa", "#d4a373", "#b8f25a",
  "#ff6b6b", "#8ecae6", "#ffb4a2", "#90be6d", "#cdb4db", "#f9c74f", "#43aa8b", "#f28482",
];

export const TYPE_COLOURS: Record<string, string> = {
  episodic: "#6ea8fe",
  semantic: "#5cd08d",
  procedural: "#f3b562",
};

export const STATE_COLOURS: Record<string, string> = {
  created: "#9ec5fe",
  active: "#6ea8fe",
  consolidated: "#5cd08d",
  decayed: "#f1707b",
  archived: "#c38bff",
  deleted: "#555b73",
};

/** FNV-1a: a cluster keeps its colour across reloads, panes and workers. */
export function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function clusterColour(name: string | null): string {
  return name === null ? NONE : PALETTE[hash(name) % PALETTE.length];
}
