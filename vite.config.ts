import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The page must make no request beyond its own origin: everything is bundled, nothing is fetched from a CDN.
export default defineConfig({
  plugins: [react()],
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
