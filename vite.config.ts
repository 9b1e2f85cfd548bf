import { defineConfig, type Plugin } from 'vite';
import react from '@vitejs/plugin-react';

/**
 * The built page's Content-Security-Policy. connect-src 'self': the page fetches only from its own origin (the demo
 * model, the sample texts), so no script, ours or a dependency's, can send a checkpoint anywhere; script-src 'self'
 * with no 'unsafe-inline' or 'unsafe-eval': no inline script, no eval or new Function (e2e/security.e2e.mjs checks the built page).
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "worker-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
].join('; ');

/**
 * Puts the policy in the built index.html as the first <meta> of <head> (the page is static files: there is no server
 * of ours to send it as a header). Only in `vite build`: the dev server's hot-reload client is an inline script.
 */
function contentSecurityPolicy(): Plugin {
  return {
    name: 'moe-prune-csp',
    apply: 'build',
    transformIndexHtml: {
      order: 'post',
      handler: () => [{ tag: 'meta', attrs: { 'http-equiv': 'Content-Security-Policy', content: CONTENT_SECURITY_POLICY }, injectTo: 'head-prepend' }],
    },
  };
}

// The page must make no request beyond its own origin: everything is bundled, nothing is fetched from a CDN.
export default defineConfig({
  plugins: [react(), contentSecurityPolicy()],
  server: { host: '127.0.0.1', port: 5173 },
  preview: { host: '127.0.0.1', port: 5173 },
  build: {
    target: 'es2022',
    sourcemap: true,
    // The chart library, the tokenizer and the GPU engine load with the panels that use them, each in its own chunk.
    rolldownOptions: {
      output: {
        advancedChunks: {
          groups: [
            { name: 'charts', test: /node_modules[\\/](recharts|d3-[a-z-]+|victory-vendor|decimal\.js-light|es-toolkit|immer|reselect|@reduxjs|react-redux)[\\/]/ },
            { name: 'tokenizers', test: /node_modules[\\/]@huggingface[\\/]/ },
          ],
        },
      },
    },
  },
});
