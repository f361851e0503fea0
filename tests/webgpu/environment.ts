/**
 * What the webgpu tests need from the machine: the `webgpu` package (Dawn's
 * prebuilt dawn.node), the Vulkan loader and Mesa's lavapipe ICD. Mesa
 * 22.3 (Debian 12's own) is too old for Dawn: bookworm-backports' 25.x works
 * (scripts/test.sh installs it).
 */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { arch } from 'node:os';

const ICD_DIRS = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];
const LOADER_DIRS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu'];

/** The lavapipe ICD manifest (lvp_icd.json, or lvp_icd.<arch>.json on older Mesa), if installed. */
export function lavapipeIcd(): string | undefined {
  const machine = arch() === 'x64' ? 'x86_64' : arch() === 'arm64' ? 'aarch64' : arch();
  for (const dir of ICD_DIRS) {
    if (!existsSync(dir)) continue;
    const names = readdirSync(dir);
    for (const name of [`lvp_icd.${machine}.json`, 'lvp_icd.json']) if (names.includes(name)) return `${dir}/${name}`;
  }
  return undefined;
}

/** Undefined when the webgpu tests can run; else why not, and how to fix it. */
export function missingForWebGpu(): string | undefined {
  if (process.platform !== 'linux') return `webgpu tests run on Linux only (this is ${process.platform})`;
  const require = createRequire(import.meta.url);
  for (const pkg of ['webgpu', '@tensorflow/tfjs-backend-webgpu']) {
    try {
      require.resolve(pkg);
    } catch {
      return `npm package ${pkg} is not installed (an optional dependency: npm ci without --omit=optional)`;
    }
  }
  if (!LOADER_DIRS.some((d) => existsSync(`${d}/libvulkan.so.1`))) {
    return 'the Vulkan loader (libvulkan.so.1) is not installed: apt-get install libvulkan1 (scripts/test.sh does)';
  }
  if (!lavapipeIcd()) {
    return 'Mesa lavapipe is not installed: apt-get install -t bookworm-backports mesa-vulkan-drivers (scripts/test.sh does)';
  }
  return undefined;
}
