// Node module-loader hook: lets `import code from '.../x.wgsl?raw'` (Vite's raw-import syntax, used by
// src/gpu/kernels/*.ts) work under plain Node / tsx. Register it before importing any GPU module:
//
//   import { register } from 'node:module';
//   register('../src/cli/wgsl-loader.mjs', import.meta.url);   // path relative to the registering file
//
import { readFile } from 'node:fs/promises';

const RAW = /\.wgsl\?raw$/;

export async function resolve(specifier, context, nextResolve) {
  if (!RAW.test(specifier)) return nextResolve(specifier, context);
  const url = new URL(specifier, context.parentURL);
  return { url: url.href, format: 'module', shortCircuit: true };
}

export async function load(url, context, nextLoad) {
  if (!RAW.test(url)) return nextLoad(url, context);
  const file = new URL(url);
  file.search = '';
  const text = await readFile(file, 'utf8');
  return { format: 'module', source: `export default ${JSON.stringify(text)};`, shortCircuit: true };
}
