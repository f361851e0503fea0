/**
 * The one check every corpus metric makes on its inputs.
 */
import { InvalidArgument } from '../common/errors.js';

/**
 * Throws InvalidArgument unless there is at least one hypothesis, exactly one
 * reference list per hypothesis, and at least one reference in each list.
 */
export function checkCorpus(hypotheses: readonly string[], references: readonly (readonly string[])[]): void {
  if (hypotheses.length === 0) throw new InvalidArgument('`hypotheses` must not be empty');
  if (hypotheses.length !== references.length) {
    throw new InvalidArgument(
      `\`references\` must have one entry per hypothesis (${hypotheses.length}), got ${references.length}`,
    );
  }
  references.forEach((refs, i) => {
    if (refs.length === 0) throw new InvalidArgument(`\`references[${i}]\` must hold at least one reference, got none`);
  });
}
