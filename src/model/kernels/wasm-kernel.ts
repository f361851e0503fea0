/** Helpers shared by the WebAssembly kernels of kernels/ (each module exports its own memory). */

const WASM_PAGE_BYTES = 65536;
/** wasm32 memory limit: 4 GiB. */
const MAX_WASM_PAGES = 65536;

const compiled = new Map<string, WebAssembly.Module>();

/** A new instance of an assembled kernel module (base64, see scripts/build-kernels.mjs); each module is compiled once. */
export function instantiateKernel<T>(base64: string): T {
  let module = compiled.get(base64);
  if (!module) {
    module = new WebAssembly.Module(Buffer.from(base64, 'base64'));
    compiled.set(base64, module);
  }
  return new WebAssembly.Instance(module).exports as unknown as T;
}

/**
 * Grows `memory` to hold `bytes`, by at least a quarter of its size so that
 * growing is rare (each grow detaches the views: callers renew theirs when
 * `memory.buffer` changed). Throws naming `what` past the 4 GiB limit.
 */
export function growMemory(memory: WebAssembly.Memory, bytes: number, what: string): void {
  const have = memory.buffer.byteLength;
  if (bytes <= have) return;
  const need = Math.ceil((bytes - have) / WASM_PAGE_BYTES);
  const current = have / WASM_PAGE_BYTES;
  const grow = Math.min(Math.max(need, Math.ceil(current / 4), 16), MAX_WASM_PAGES - current);
  if (grow < need) throw new Error(`${what} memory exhausted: ${Math.round(have / 2 ** 20)} MiB in use (the 4 GiB wasm limit)`);
  memory.grow(grow);
}
