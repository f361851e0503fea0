/**
 * Per model: xgrammar's view of the vocabulary (TokenizerInfo) and its
 * GrammarCompiler, built on the first constrained request (a few hundred
 * milliseconds for a 150k vocabulary), and the compiled grammars of recent
 * response formats, keyed by schema text. Compiling takes tens of
 * milliseconds, but about a second per bounded string (`maxLength` 40 on
 * GPT-2's vocabulary: xgrammar precomputes token masks for every repetition
 * state), and it runs synchronously on the serving thread; a matcher per
 * request from a cached grammar is cheap.
 */
import type { CompiledGrammar, GrammarCompiler, TokenizerInfo } from '@mlc-ai/web-xgrammar';
import { InvalidArgument } from '../../common/errors.js';
import { BYTE_TO_UNICODE } from '../tokenizer/bytes-to-unicode.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { GrammarConstraint } from './grammar-constraint.js';
import { checkResponseFormat, isConstrained, type ResponseFormat } from './response-format.js';
import { Utf8TokenMask } from './utf8-token-mask.js';
import { xgrammar } from './xgrammar-module.js';

/** Compiled grammars kept (least recently used dropped first). */
export const GRAMMAR_CACHE_ENTRIES = 64;

/**
 * How JSON is laid out: one line, no free whitespace, json.dumps' default
 * separators (", " and ": "). Free whitespace (xgrammar's default) lets a
 * model emit newlines and spaces until max_new_tokens runs out, a known
 * failure of small models in JSON mode; and `{"a": 1, "b": 2}` is the form
 * most JSON in training text and API transcripts takes, so its tokens are
 * the likely ones, where the compact ","/":" form is rarer.
 */
const LAYOUT = { anyWhitespace: false, indent: -1, separators: [', ', ': '] as [string, string] };

interface Compiler {
  info: TokenizerInfo;
  compiler: GrammarCompiler;
  utf8: Utf8TokenMask;
}

/** The xgrammar state of one model. */
export class GrammarCache {
  private compilerPromise: Promise<Compiler> | undefined;
  private readonly grammars = new Map<string, Promise<CompiledGrammar>>();

  constructor(
    private readonly tokenizer: Tokenizer,
    /** The logits width (config vocab_size, >= the tokenizer's vocabulary). */
    private readonly width: number,
    private readonly maxEntries = GRAMMAR_CACHE_ENTRIES,
  ) {}

  /** Compiled grammars held. */
  get size(): number {
    return this.grammars.size;
  }

  /**
   * A fresh constraint (its own GrammarMatcher: dispose it) for `format`, or
   * undefined for free text. `stopIds` end the generation once the grammar
   * is complete (the sequence's EOS / end-of-turn ids).
   * @throws InvalidArgument when the schema is outside the subset or does not compile.
   */
  async constraint(format: ResponseFormat | undefined, stopIds: readonly number[]): Promise<GrammarConstraint | undefined> {
    if (!isConstrained(format)) return undefined;
    const compiled = await this.compiled(format);
    const { utf8 } = await this.compilerState();
    const matcher = await xgrammar().GrammarMatcher.createGrammarMatcher(compiled, [...stopIds]);
    return new GrammarConstraint(matcher, utf8, this.width);
  }

  /** Frees every compiled grammar and the compiler (matchers in use keep what they need). */
  async dispose(): Promise<void> {
    const grammars = [...this.grammars.values()];
    this.grammars.clear();
    for (const g of await Promise.allSettled(grammars)) if (g.status === 'fulfilled') g.value.dispose();
    const state = this.compilerPromise;
    this.compilerPromise = undefined;
    if (state) {
      const s = await state.catch(() => undefined);
      s?.compiler.dispose();
      s?.info.dispose();
    }
  }

  private compiled(format: Exclude<ResponseFormat, { type: 'text' }>): Promise<CompiledGrammar> {
    const key = format.type === 'json_object' ? 'json_object' : `json_schema:${JSON.stringify(format.schema)}`;
    const hit = this.grammars.get(key);
    if (hit) {
      // Map order is insertion order: re-inserting marks it most recently used.
      this.grammars.delete(key);
      this.grammars.set(key, hit);
      return hit;
    }
    // The transports check the subset already; checked again here because
    // xgrammar aborts on what it cannot compile instead of explaining.
    checkResponseFormat(format, 'response_format');
    const pending = this.compile(key, format);
    this.grammars.set(key, pending);
    pending.catch(() => this.grammars.delete(key));
    while (this.grammars.size > this.maxEntries) {
      const [oldest, grammar] = this.grammars.entries().next().value!;
      this.grammars.delete(oldest);
      // A matcher holds its own reference to the grammar (xgrammar's objects share their state), so freeing is safe.
      grammar.then((g) => g.dispose(), () => {});
    }
    return pending;
  }

  private async compile(key: string, format: Exclude<ResponseFormat, { type: 'text' }>): Promise<CompiledGrammar> {
    const { compiler } = await this.compilerState();
    try {
      // json_object: OpenAI's JSON mode means an object; a schema of any
      // object (non-strict: any properties) gives that in the same layout,
      // where xgrammar's builtin JSON grammar would allow any value and free whitespace.
      const schema = format.type === 'json_object' ? '{"type": "object"}' : JSON.stringify(format.schema);
      return await compiler.compileJSONSchema(schema, LAYOUT.anyWhitespace, LAYOUT.indent, LAYOUT.separators, format.type !== 'json_object');
    } catch (err) {
      const field = format.type === 'json_object' ? 'response_format' : 'response_format.json_schema.schema';
      throw new InvalidArgument(`\`${field}\` could not be compiled to a grammar (${key.length} characters)`, { cause: err });
    }
  }

  private compilerState(): Promise<Compiler> {
    this.compilerPromise ??= this.createCompiler();
    return this.compilerPromise;
  }

  private async createCompiler(): Promise<Compiler> {
    const xg = xgrammar();
    // Every tokenizer can say which bytes a token stands for, so the vocabulary
    // goes to xgrammar in one encoding whatever its kind: the bytes spelled in
    // GPT-2's byte-to-unicode alphabet, vocab type byte_level. That covers
    // byte-level BPE (GPT-2, Llama 3, Qwen) and SentencePiece with byte
    // fallback (Llama 2: `▁` is a space, `<0x0A>` a newline) alike, and it is
    // exactly what our text decoder emits. Special tokens have no bytes: an
    // empty string, which xgrammar never allows (stop tokens aside).
    const bytes: Uint8Array[] = [];
    const strings: string[] = [];
    for (let id = 0; id < this.tokenizer.vocabSize; id++) {
      const b = this.tokenizer.tokenBytes(id);
      bytes.push(b);
      let s = '';
      for (const x of b) s += BYTE_TO_UNICODE[x];
      strings.push(s);
    }
    // Ids past the tokenizer (a padded vocab_size) get empty strings too: never allowed.
    while (strings.length < this.width) strings.push('');
    const stops = [...(this.tokenizer.eosIds ?? [this.tokenizer.eosId])];
    const info = await xg.TokenizerInfo.createTokenizerInfo(strings, 'byte_level', false, this.width, stops);
    const compiler = await xg.GrammarCompiler.createGrammarCompiler(info, true);
    return { info, compiler, utf8: new Utf8TokenMask(bytes, this.width) };
  }
}
