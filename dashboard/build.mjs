// Bundles the dashboard for the workers to serve at /dashboard: dist/index.html,
// dist/dashboard.js and dist/dashboard.css (uPlot included). Nothing is fetched at run time.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";

const watch = process.argv.includes("--dev");
rmSync("dist", { recursive: true, force: true });
mkdirSync("dist", { recursive: true });
await build({
  entryPoints: { dashboard: "src/main.ts" },
  bundle: true,
  minify: !watch,
  sourcemap: "linked",
  target: ["es2020", "chrome100", "firefox100", "safari15"],
  format: "iife",
  outdir: "dist",
  logLevel: "info",
  legalComments: "linked",
});
copyFileSync("src/index.html", "dist/index.html");
