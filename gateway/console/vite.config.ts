import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

/**
 * The console is a static bundle the gateway serves at /console/ (gateway/routes/console.ts). `npm start` and the
 * tests build it (`npm run build:console`); nothing is fetched from a CDN at run time.
 */
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/console/",
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: true, chunkSizeWarningLimit: 1024 },
  logLevel: "warn",
});
