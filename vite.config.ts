import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The page must make no request beyond its own origin: everything is bundled, nothing is fetched from a CDN.
export default defineConfig({
  plugins: [react()],
  server: { host: '127.0.0.1', port: 5173 },
  preview: { host: '127.0.0.1', port: 5173 },
  build: { target: 'es2022', sourcemap: true },
});
