/**
 * Values of the `adapter` label. Adapter names come from clients, so the
 * number of distinct values is capped: the first `limit` names keep their own
 * series, later ones share OTHER_ADAPTER. Versions are dropped ("support@3" ->
 * "support"), so a retrained adapter keeps its series. Both special values
 * contain parentheses, which adapter names cannot (`[A-Za-z0-9._-]`), so they
 * never collide with a real adapter.
 */

/** Label value of requests served by the bare base model. */
export const BASE_MODEL_LABEL = '(base)';

/** Label value shared by adapters beyond the cap. */
export const OTHER_ADAPTER = '(other)';

/** Default cap of distinct adapter label values. */
export const DEFAULT_ADAPTER_LABEL_LIMIT = 50;

export class AdapterLabels {
  private readonly known = new Set<string>();

  constructor(private readonly limit = DEFAULT_ADAPTER_LABEL_LIMIT) {}

  /** The label value of "name@version" ('' = the base model). */
  of(adapter: string): string {
    if (adapter === '') return BASE_MODEL_LABEL;
    const at = adapter.lastIndexOf('@');
    const name = at > 0 ? adapter.slice(0, at) : adapter;
    if (this.known.has(name)) return name;
    if (this.known.size >= this.limit) return OTHER_ADAPTER;
    this.known.add(name);
    return name;
  }
}
