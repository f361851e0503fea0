/**
 * Publishes the same LoRA adapter to an adapter store again and again, as a
 * fine-tune job's end does, until killed (used by publish-kill.test.ts).
 *
 *   publish-loop.ts ADAPTERS_DIR
 *
 * Prints `stored <version>` on stdout once each version is in place.
 */
import pino from 'pino';
import { AdapterStore } from '../../../src/engine/adapter-store.js';
import { initLoraAdapter } from '../../../src/model/adapter-init.js';
import { PUBLISH_BASE, PUBLISH_LORA, PUBLISH_SEED } from './publish-adapter.js';
import { testBackend } from '../../helpers/tiny-model.js';

const [dir] = process.argv.slice(2);
await testBackend();
const adapter = initLoraAdapter(PUBLISH_BASE, PUBLISH_LORA, { seed: PUBLISH_SEED, init: 'gaussian', baseModel: 'publish-base' });
const store = await AdapterStore.open(dir!, PUBLISH_BASE, pino({ level: 'silent' }), { watch: false });
for (;;) {
  const info = await store.save('killed', adapter);
  process.stdout.write(`stored ${info.version}\n`);
}
