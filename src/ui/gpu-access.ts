/**
 * The only place the page touches `navigator.gpu`. Everything else receives the GPU object from here,
 * so the core never depends on the browser global and runs unchanged in Node.
 */
export type GpuAvailability =
  | { readonly kind: 'ok'; readonly gpu: GPU }
  | { readonly kind: 'no-api'; readonly secureContext: boolean };

export function browserGpu(): GpuAvailability {
  const gpu = typeof navigator !== 'undefined' ? navigator.gpu : undefined;
  if (gpu) return { kind: 'ok', gpu };
  return { kind: 'no-api', secureContext: typeof window !== 'undefined' && window.isSecureContext };
}
