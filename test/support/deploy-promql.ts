/**
 * What a Grafana dashboard asks of a Prometheus registry: the metric names and label names in its PromQL, read by
 * a small tokenizer (enough for selectors, matchers, functions, aggregations with by/without, binary operators,
 * range and subquery brackets and Grafana's $variables; not a full PromQL parser), and the Prometheus text
 * exposition read back into metric families, sample names and the labels (with values) each sample carries.
 * Used by test/deploy.test.ts to check deploy/grafana/dashboards/driftline.json against driftline's registry.
 */

export interface Matcher {
  readonly label: string;
  readonly op: '=' | '!=' | '=~' | '!~';
  readonly value: string;
}

export interface Selector {
  /** The metric name; undefined for a bare `{...}` selector. */
  readonly metric: string | undefined;
  readonly matchers: Matcher[];
}

export interface PromqlRefs {
  readonly selectors: Selector[];
  /** Labels named in by / without / on / ignoring / group_left / group_right. */
  readonly groupingLabels: string[];
  /** Functions and aggregation operators called. */
  readonly functions: string[];
}

export const AGGREGATIONS = new Set([
  'sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile', 'limitk', 'limit_ratio',
]);
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'atan2', 'inf', 'nan']);

type Token =
  | { kind: 'ident'; text: string }
  | { kind: 'string'; text: string }
  | { kind: 'number'; text: string }
  | { kind: 'var'; text: string }
  | { kind: 'punct'; text: string };

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < expr.length) {
    const rest = expr.slice(i);
    const ws = /^\s+/.exec(rest);
    if (ws) {
      i += ws[0].length;
      continue;
    }
    if (rest[0] === '#') {
      // A comment runs to the end of the line.
      const nl = rest.indexOf('\n');
      i += nl < 0 ? rest.length : nl;
      continue;
    }
    if (rest[0] === '"' || rest[0] === "'" || rest[0] === '`') {
      const quote = rest[0];
      let j = 1;
      let text = '';
      while (j < rest.length && rest[j] !== quote) {
        if (rest[j] === '\\' && quote !== '`') {
          text += rest[j + 1] ?? '';
          j += 2;
        } else text += rest[j++];
      }
      if (j >= rest.length) throw new Error(`unterminated string in ${JSON.stringify(expr)}`);
      tokens.push({ kind: 'string', text });
      i += j + 1;
      continue;
    }
    if (rest[0] === '[') {
      // A range or subquery: durations and Grafana variables ($__rate_interval), nothing to check inside.
      const close = rest.indexOf(']');
      if (close < 0) throw new Error(`unclosed [ in ${JSON.stringify(expr)}`);
      i += close + 1;
      continue;
    }
    const variable = /^\$(\{[A-Za-z_][A-Za-z0-9_:]*\}|[A-Za-z_][A-Za-z0-9_]*)/.exec(rest);
    if (variable) {
      tokens.push({ kind: 'var', text: variable[0] });
      i += variable[0].length;
      continue;
    }
    const number = /^(0x[0-9a-fA-F]+|\d+(\.\d*)?([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?)/.exec(rest);
    if (number) {
      tokens.push({ kind: 'number', text: number[0] });
      i += number[0].length;
      continue;
    }
    const ident = /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(rest);
    if (ident) {
      tokens.push({ kind: 'ident', text: ident[0] });
      i += ident[0].length;
      continue;
    }
    const punct = /^(=~|!~|!=|==|>=|<=|[-+*/%^(){},=<>@])/.exec(rest);
    if (punct) {
      tokens.push({ kind: 'punct', text: punct[0] });
      i += punct[0].length;
      continue;
    }
    throw new Error(`unexpected '${rest[0]}' in ${JSON.stringify(expr)}`);
  }
  return tokens;
}

/** The metric selectors, grouping labels and functions of a PromQL expression. */
export function promqlRefs(expr: string): PromqlRefs {
  const tokens = tokenize(expr);
  const selectors: Selector[] = [];
  const groupingLabels: string[] = [];
  const functions: string[] = [];
  const at = (k: number) => tokens[k];
  const isPunct = (k: number, text: string) => at(k)?.kind === 'punct' && at(k)!.text === text;

  const readMatchers = (k: number): { matchers: Matcher[]; next: number } => {
    // k is at '{'
    const matchers: Matcher[] = [];
    let j = k + 1;
    while (!isPunct(j, '}')) {
      const label = at(j);
      const op = at(j + 1);
      const value = at(j + 2);
      if (label?.kind !== 'ident' || op?.kind !== 'punct' || !['=', '!=', '=~', '!~'].includes(op.text) || value?.kind !== 'string') {
        throw new Error(`cannot read a label matcher at token ${j} of ${JSON.stringify(expr)}`);
      }
      matchers.push({ label: label.text, op: op.text as Matcher['op'], value: value.text });
      j += 3;
      if (isPunct(j, ',')) j++;
      else if (!isPunct(j, '}')) throw new Error(`expected , or } after a matcher in ${JSON.stringify(expr)}`);
    }
    return { matchers, next: j + 1 };
  };

  let k = 0;
  while (k < tokens.length) {
    const tok = tokens[k];
    if (tok.kind === 'ident') {
      const word = tok.text;
      if (GROUPING.has(word)) {
        if (isPunct(k + 1, '(')) {
          let j = k + 2;
          while (!isPunct(j, ')')) {
            const t = at(j);
            if (t === undefined) throw new Error(`unclosed ${word} (...) in ${JSON.stringify(expr)}`);
            if (t.kind === 'ident') groupingLabels.push(t.text);
            else if (!(t.kind === 'punct' && t.text === ',')) throw new Error(`unexpected '${t.text}' in ${word} (...) of ${JSON.stringify(expr)}`);
            j++;
          }
          k = j + 1;
        } else k++;
        continue;
      }
      if (KEYWORDS.has(word.toLowerCase())) {
        k++;
        continue;
      }
      if (isPunct(k + 1, '(') || (AGGREGATIONS.has(word) && at(k + 1)?.kind === 'ident' && GROUPING.has(at(k + 1)!.text))) {
        functions.push(word);
        k++;
        continue;
      }
      if (isPunct(k + 1, '{')) {
        const { matchers, next } = readMatchers(k + 1);
        selectors.push({ metric: word, matchers });
        k = next;
      } else {
        selectors.push({ metric: word, matchers: [] });
        k++;
      }
      continue;
    }
    if (tok.kind === 'punct' && tok.text === '{') {
      const { matchers, next } = readMatchers(k);
      const name = matchers.find((m) => m.label === '__name__' && m.op === '=');
      selectors.push({ metric: name?.value, matchers: matchers.filter((m) => m !== name) });
      k = next;
      continue;
    }
    k++;
  }
  return { selectors, groupingLabels, functions };
}

/** `{{label}}` references of a Grafana legend format. */
export function legendLabels(legendFormat: string | undefined): string[] {
  return [...(legendFormat ?? '').matchAll(/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g)].map((m) => m[1]);
}

export interface Exposition {
  /** Family name -> type (counter, gauge, histogram, summary, untyped), from the # TYPE lines. */
  readonly types: Map<string, string>;
  /** Sample name (with _bucket/_sum/_count/_total as written) -> label name -> values seen. */
  readonly samples: Map<string, Map<string, Set<string>>>;
}

export function emptyExposition(): Exposition {
  return { types: new Map(), samples: new Map() };
}

/** Reads Prometheus text exposition (version 0.0.4) into `into` (merging: several scrapes make one picture). */
export function parseExposition(text: string, into: Exposition = emptyExposition()): Exposition {
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const type = /^#\s*TYPE\s+(\S+)\s+(\S+)/.exec(line);
      if (type) into.types.set(type[1], type[2]);
      continue;
    }
    const m = /^([A-Za-z_:][A-Za-z0-9_:]*)(\{([\s\S]*)\})?\s+\S+/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels = into.samples.get(m[1]) ?? new Map<string, Set<string>>();
    into.samples.set(m[1], labels);
    if (m[3] !== undefined) {
      for (const lm of m[3].matchAll(/([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        const value = lm[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
        const set = labels.get(lm[1]) ?? new Set<string>();
        set.add(value);
        labels.set(lm[1], set);
      }
    }
  }
  return into;
}

export interface ResolvedMetric {
  /** The family (histogram suffixes stripped). */
  readonly family: string;
  readonly type: string;
  /** Labels on the samples the name selects, with the values seen; empty when the family has no sample yet. */
  readonly labels: Map<string, Set<string>>;
  readonly hasSamples: boolean;
}

/**
 * The family a name in a query selects, or a reason it selects nothing: the family must be in the exposition
 * (# TYPE), and a histogram or summary is selected through its _bucket, _sum or _count series.
 */
export function resolveMetric(exposition: Exposition, name: string): ResolvedMetric | string {
  const direct = exposition.types.get(name);
  if (direct !== undefined) {
    if (direct === 'histogram' || direct === 'summary') return `${name} is a ${direct}: select ${name}_bucket, _sum or _count`;
    const labels = exposition.samples.get(name);
    return { family: name, type: direct, labels: labels ?? new Map(), hasSamples: labels !== undefined };
  }
  const suffix = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (suffix) {
    const type = exposition.types.get(suffix[1]);
    if (type === 'histogram' || (type === 'summary' && suffix[2] !== 'bucket')) {
      const labels = exposition.samples.get(name);
      return { family: suffix[1], type, labels: labels ?? new Map(), hasSamples: labels !== undefined };
    }
  }
  return `${name} is not in the registry`;
}
