/**
 * Loads @mlc-ai/web-xgrammar (xgrammar, the grammar engine of vLLM and
 * SGLang, compiled to WebAssembly) on first use.
 *
 * Why not `import`: the package is a UMD bundle (it assigns `exports.X`) but
 * its package.json says `"type": "module"`, so Node loads it as ESM, where
 * `exports` is undefined, and the import throws. So we read the file and run
 * it as the CommonJS module it is, with the five CommonJS parameters. The
 * bundle embeds its wasm as base64 and instantiates it lazily on the first
 * factory call (`createTokenizerInfo` and friends), so loading is cheap, and
 * loading it only on the first constrained request keeps startup unchanged.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import type * as Xgrammar from '@mlc-ai/web-xgrammar';

/** The package's exports (its own .d.ts types). */
export type XgrammarModule = typeof Xgrammar;

let loaded: XgrammarModule | undefined;

/** The xgrammar module, evaluated once per thread on first call. */
export function xgrammar(): XgrammarModule {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  const file = require.resolve('@mlc-ai/web-xgrammar');
  const source = readFileSync(file, 'utf8');
  const module = { exports: {} as Record<string, unknown> };
  // The bundle's Emscripten part calls require('fs'/'path'/'url') and reads
  // __filename / __dirname to find itself; give it a require rooted at its file.
  const run = new Function('exports', 'module', 'require', '__filename', '__dirname', source) as (
    exports: object,
    module: object,
    require: NodeRequire,
    filename: string,
    dirname: string,
  ) => void;
  run(module.exports, module, createRequire(file), file, dirname(file));
  loaded = module.exports as unknown as XgrammarModule;
  return loaded;
}
