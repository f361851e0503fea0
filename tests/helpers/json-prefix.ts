/**
 * An independent check of JSON prefixes (RFC 8259), for constrained-decoding
 * tests: `complete` when the text is one JSON value (surrounding whitespace
 * allowed), `prefix` when it is cut short but some continuation makes it
 * valid JSON, `invalid` otherwise. A bare number at the end counts as a
 * prefix (it could have more digits).
 */
export type JsonPrefixStatus = 'complete' | 'prefix' | 'invalid';

class EndOfInput extends Error {}
class Invalid extends Error {}

export function jsonPrefixStatus(s: string): JsonPrefixStatus {
  let i = 0;
  const peek = (): string => {
    if (i >= s.length) throw new EndOfInput();
    return s[i];
  };
  const expect = (ok: boolean) => {
    if (!ok) throw new Invalid(`at ${i}: ${JSON.stringify(s.slice(i, i + 10))}`);
  };
  const ws = () => {
    while (i < s.length && ' \t\n\r'.includes(s[i])) i++;
  };
  const digit = (c: string) => c >= '0' && c <= '9';
  const literal = (word: string) => {
    for (const c of word) {
      expect(peek() === c);
      i++;
    }
  };
  const string = () => {
    literal('"');
    for (;;) {
      const c = peek();
      i++;
      if (c === '"') return;
      if (c === '\\') {
        const e = peek();
        i++;
        if (e === 'u') {
          for (let k = 0; k < 4; k++) {
            expect(/[0-9a-fA-F]/.test(peek()));
            i++;
          }
        } else expect('"\\/bfnrt'.includes(e));
      } else expect(c >= ' ');
    }
  };
  const digits = () => {
    expect(digit(peek()));
    while (digit(peek())) i++;
  };
  const number = () => {
    if (peek() === '-') i++;
    if (peek() === '0') i++;
    else digits();
    if (peek() === '.') {
      i++;
      digits();
    }
    if (peek() === 'e' || peek() === 'E') {
      i++;
      if (peek() === '+' || peek() === '-') i++;
      digits();
    }
  };
  const list = (open: string, close: string, item: () => void) => {
    literal(open);
    ws();
    if (peek() === close) {
      i++;
      return;
    }
    for (;;) {
      item();
      ws();
      const c = peek();
      i++;
      if (c === close) return;
      expect(c === ',');
    }
  };
  const value = (): void => {
    ws();
    const c = peek();
    if (c === '{') {
      list('{', '}', () => {
        ws();
        string();
        ws();
        literal(':');
        value();
      });
    } else if (c === '[') list('[', ']', value);
    else if (c === '"') string();
    else if (c === 't') literal('true');
    else if (c === 'f') literal('false');
    else if (c === 'n') literal('null');
    else {
      expect(c === '-' || digit(c));
      number();
    }
  };
  try {
    value();
    ws();
    return i === s.length ? 'complete' : 'invalid';
  } catch (err) {
    if (err instanceof EndOfInput) return 'prefix';
    if (err instanceof Invalid) return 'invalid';
    throw err;
  }
}
