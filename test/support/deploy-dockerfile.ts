/**
 * A small Dockerfile parser and the hadolint-like rules test/deploy.test.ts holds the repository's Dockerfile to
 * (docs/deploy.md lists the same rules). No Docker engine runs on this project's machines, so the image is never
 * built here: these rules are what is checked instead.
 *
 * The parser follows the Dockerfile reference for what this project uses: parser directives at the top
 * (`# syntax=`, `# escape=`), comment lines (also inside a continued instruction, where Docker drops them too),
 * line continuations with the escape character (backslash by default), empty continuation lines, JSON exec form,
 * and `--flag=value` options. Heredocs (`RUN <<EOF`) are refused with an error rather than misread.
 */

export interface Instruction {
  /** Upper-case keyword: FROM, RUN, COPY, ... */
  readonly keyword: string;
  /** Everything after the keyword, continuations joined, trimmed. */
  readonly args: string;
  /** 1-based line of the keyword. */
  readonly line: number;
}

export interface Stage {
  readonly index: number;
  /** The image (or earlier stage) the stage starts from, as written. */
  readonly image: string;
  /** The `AS name`, lower-cased; undefined when the FROM has none. */
  readonly name: string | undefined;
  readonly line: number;
  /** The stage's instructions after its FROM. */
  readonly instructions: Instruction[];
}

export interface Dockerfile {
  /** ARG lines before the first FROM. */
  readonly globalArgs: Instruction[];
  readonly stages: Stage[];
}

export class DockerfileSyntaxError extends Error {
  override readonly name = 'DockerfileSyntaxError';
}

/** Splits a Dockerfile into stages of instructions. */
export function parseDockerfile(text: string): Dockerfile {
  const lines = text.split(/\r?\n/);
  let escape = '\\';
  let i = 0;
  // Parser directives: `# key=value` lines at the very top, before any comment, blank line or instruction.
  for (; i < lines.length; i++) {
    const directive = /^#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*$/.exec(lines[i]);
    if (!directive) break;
    if (directive[1].toLowerCase() === 'escape') {
      if (directive[2] !== '\\' && directive[2] !== '`') throw new DockerfileSyntaxError(`line ${i + 1}: escape must be \\ or \``);
      escape = directive[2];
    }
  }

  const instructions: Instruction[] = [];
  for (; i < lines.length; i++) {
    const first = lines[i];
    if (/^\s*$/.test(first) || /^\s*#/.test(first)) continue;
    const line = i + 1;
    let joined = '';
    let current = first;
    // A line whose last non-blank character is the escape character continues on the next line that is not a
    // comment (comment lines and empty lines inside a continuation are skipped, as Docker does).
    for (;;) {
      const trimmed = current.replace(/\s+$/, '');
      if (!trimmed.endsWith(escape)) {
        joined += current;
        break;
      }
      joined += trimmed.slice(0, -1);
      i++;
      while (i < lines.length && (/^\s*#/.test(lines[i]) || /^\s*$/.test(lines[i]))) i++;
      if (i >= lines.length) break;
      current = lines[i];
    }
    const match = /^\s*([A-Za-z]+)(?:\s+([\s\S]*))?$/.exec(joined);
    if (!match) throw new DockerfileSyntaxError(`line ${line}: cannot read an instruction in '${joined.trim()}'`);
    const keyword = match[1].toUpperCase();
    const args = (match[2] ?? '').trim();
    if (/<<-?\s*["']?[A-Za-z_][A-Za-z0-9_]*["']?/.test(args) && (keyword === 'RUN' || keyword === 'COPY')) {
      throw new DockerfileSyntaxError(`line ${line}: heredocs are not supported by this parser`);
    }
    instructions.push({ keyword, args, line });
  }

  const globalArgs: Instruction[] = [];
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const { rest } = takeFlags(ins.args);
      const parts = rest.split(/\s+/).filter(Boolean);
      if (parts.length === 0) throw new DockerfileSyntaxError(`line ${ins.line}: FROM without an image`);
      let name: string | undefined;
      if (parts.length === 3 && parts[1].toUpperCase() === 'AS') name = parts[2].toLowerCase();
      else if (parts.length !== 1) throw new DockerfileSyntaxError(`line ${ins.line}: FROM takes an image and an optional 'AS name', got '${ins.args}'`);
      stages.push({ index: stages.length, image: parts[0], name, line: ins.line, instructions: [] });
    } else if (stages.length === 0) {
      if (ins.keyword !== 'ARG') throw new DockerfileSyntaxError(`line ${ins.line}: ${ins.keyword} before the first FROM (only ARG may come first)`);
      globalArgs.push(ins);
    } else {
      stages[stages.length - 1].instructions.push(ins);
    }
  }
  return { globalArgs, stages };
}

/** Leading `--name=value` (or `--name`) options of an instruction, and the rest. */
export function takeFlags(args: string): { flags: Map<string, string>; rest: string } {
  const flags = new Map<string, string>();
  let rest = args.trim();
  for (;;) {
    const m = /^--([a-zA-Z-]+)(?:=(\S*))?(?:\s+|$)/.exec(rest);
    if (!m) break;
    flags.set(m[1].toLowerCase(), m[2] ?? '');
    rest = rest.slice(m[0].length);
  }
  return { flags, rest };
}

/** The JSON exec form (`["a", "b"]`) of an instruction's arguments; undefined for the shell form. */
export function execForm(args: string): string[] | undefined {
  const text = args.trim();
  if (!text.startsWith('[')) return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    if (Array.isArray(parsed) && parsed.every((p) => typeof p === 'string')) return parsed as string[];
  } catch {
    // Docker runs an unparseable "[..." as a shell command; so do we: not the exec form.
  }
  return undefined;
}

/** Sources and destination of COPY/ADD (shell or JSON form), after the flags. */
export function copyOperands(args: string): { flags: Map<string, string>; sources: string[]; dest: string } {
  const { flags, rest } = takeFlags(args);
  const parts = execForm(rest) ?? rest.split(/\s+/).filter(Boolean);
  return { flags, sources: parts.slice(0, -1), dest: parts[parts.length - 1] ?? '' };
}

/** Image reference parts: name, tag (undefined when none), digest (undefined when none). */
export function imageRef(ref: string): { name: string; tag: string | undefined; digest: string | undefined } {
  const [beforeDigest, digest] = ref.split('@', 2) as [string, string | undefined];
  const slash = beforeDigest.lastIndexOf('/');
  const colon = beforeDigest.lastIndexOf(':');
  // A colon before the last slash is a registry port (registry:5000/image), not a tag.
  if (colon > slash) return { name: beforeDigest.slice(0, colon), tag: beforeDigest.slice(colon + 1), digest };
  return { name: beforeDigest, tag: undefined, digest };
}

/**
 * Why an image reference is not pinned to a specific version, or undefined when it is: a digest, or a tag that is
 * not `latest` and carries a version with at least major.minor (`22-slim` floats over every 22.x).
 */
export function unpinnedReason(ref: string): string | undefined {
  if (ref.includes('$')) return `'${ref}' is set by a variable, which these rules cannot check`;
  const { tag, digest } = imageRef(ref);
  if (digest !== undefined) return /^sha256:[0-9a-f]{64}$/.test(digest) ? undefined : `'${ref}' has a malformed digest`;
  if (tag === undefined) return `'${ref}' has no tag (that is 'latest')`;
  if (tag === 'latest') return `'${ref}' is tagged 'latest'`;
  if (!/\d+\.\d+/.test(tag)) return `'${ref}' has tag '${tag}', which names no specific version (at least major.minor)`;
  return undefined;
}

export interface Finding {
  readonly rule: string;
  readonly message: string;
  readonly line?: number;
}

export interface DockerfileRuleOptions {
  /** Ports the deployment's config listens on: the final stage must EXPOSE each. */
  readonly ports: readonly number[];
  /** Path the HEALTHCHECK must request. */
  readonly healthPath: string;
}

/** The rules, by id: what test/deploy.test.ts and docs/deploy.md hold the Dockerfile to. */
export const DOCKERFILE_RULES: Readonly<Record<string, string>> = {
  D01: 'multi-stage: at least two FROM, each named with AS, names unique',
  D02: 'every base image pinned: a digest, or a tag with a major.minor version that is not latest (a previous stage may be named instead)',
  D03: 'the final stage switches to a non-root USER, before its ENTRYPOINT and CMD',
  D04: 'the final stage has a HEALTHCHECK (not NONE) that requests the health path, with a program the image has (no curl or wget unless installed)',
  D05: 'no ADD of a URL or git repository, and no ADD where COPY does (ADD only for a local tar archive)',
  D06: "dependencies installed with npm ci, never npm install / npm i / npm add",
  D07: 'apt-get install only with -y and --no-install-recommends, after apt-get update and followed by removing /var/lib/apt/lists in the same RUN; no apt-get upgrade',
  D08: 'the final stage EXPOSEs every port the deployment config listens on',
  D09: 'the WASM kernels are built in a build stage: npm ci then npm run build (scripts/build.mjs) in a stage before the final one',
  D10: 'the final stage takes dist/ and build/ (the kernels) with COPY --from that build stage and node_modules from an earlier stage, never from the build context; --from names a declared stage',
  D11: 'ENTRYPOINT and CMD in exec (JSON) form, and the final stage has one',
  D12: 'WORKDIR paths absolute; no sudo',
};

const APT_INSTALL = /\bapt-get\s+(?:[^&|;]*\s)?install\b/;

/** Checks a parsed Dockerfile against DOCKERFILE_RULES; an empty list means every rule holds. */
export function checkDockerfile(df: Dockerfile, options: DockerfileRuleOptions): Finding[] {
  const findings: Finding[] = [];
  const fail = (rule: string, message: string, line?: number) => findings.push({ rule, message, ...(line !== undefined ? { line } : {}) });
  const stages = df.stages;
  if (stages.length === 0) {
    fail('D01', 'no FROM at all');
    return findings;
  }
  const final = stages[stages.length - 1];
  const stageNames = new Set<string>();

  // D01, D02
  if (stages.length < 2) fail('D01', `one stage only (${stages.length} FROM): build tools would ship in the image`);
  for (const stage of stages) {
    if (stage.name === undefined) fail('D01', `FROM ${stage.image} has no 'AS name'`, stage.line);
    else if (stageNames.has(stage.name)) fail('D01', `stage name '${stage.name}' used twice`, stage.line);
    const fromStage = stageNames.has(stage.image.toLowerCase());
    if (!fromStage) {
      const why = unpinnedReason(stage.image);
      if (why !== undefined) fail('D02', why, stage.line);
    }
    if (stage.name !== undefined) stageNames.add(stage.name);
  }

  // D03: the last USER of the final stage, before ENTRYPOINT and CMD, and not root.
  const users = final.instructions.filter((i) => i.keyword === 'USER');
  const lastUser = users[users.length - 1];
  if (lastUser === undefined) fail('D03', `the final stage (line ${final.line}) never sets USER: it would run as root`);
  else {
    const user = lastUser.args.split(':')[0].trim();
    if (user === 'root' || user === '0' || user === '') fail('D03', `the final stage runs as '${lastUser.args}'`, lastUser.line);
    for (const ins of final.instructions) {
      if ((ins.keyword === 'ENTRYPOINT' || ins.keyword === 'CMD') && ins.line < lastUser.line) {
        fail('D03', `${ins.keyword} (line ${ins.line}) comes before the USER of line ${lastUser.line}`, ins.line);
      }
    }
  }

  // D04
  const healthchecks = final.instructions.filter((i) => i.keyword === 'HEALTHCHECK');
  const health = healthchecks[healthchecks.length - 1];
  if (health === undefined) fail('D04', 'the final stage has no HEALTHCHECK');
  else {
    const { rest } = takeFlags(health.args);
    if (/^NONE\b/i.test(rest)) fail('D04', 'HEALTHCHECK NONE turns the check off', health.line);
    else if (!/^CMD\b/i.test(rest)) fail('D04', `HEALTHCHECK must be 'HEALTHCHECK [options] CMD ...', got '${rest}'`, health.line);
    else {
      const command = rest.replace(/^CMD\s+/i, '');
      if (!command.includes(options.healthPath)) fail('D04', `the HEALTHCHECK does not request ${options.healthPath}`, health.line);
      const program = (execForm(command)?.[0] ?? command.split(/\s+/)[0]).split('/').pop() ?? '';
      const installed = (tool: string) =>
        stages.some((s) => s.instructions.some((i) => i.keyword === 'RUN' && APT_INSTALL.test(i.args) && new RegExp(`\\b${tool}\\b`).test(i.args.split('install')[1] ?? '')));
      for (const tool of ['curl', 'wget']) {
        if (new RegExp(`\\b${tool}\\b`).test(command) && !installed(tool)) {
          fail('D04', `the HEALTHCHECK uses ${tool}, which no RUN installs (slim images have none)`, health.line);
        }
      }
      if (program === '') fail('D04', 'the HEALTHCHECK has no command', health.line);
    }
  }

  for (const stage of stages) {
    for (const ins of stage.instructions) {
      // D05
      if (ins.keyword === 'ADD') {
        const { sources } = copyOperands(ins.args);
        for (const src of sources) {
          if (/^(https?|ftp):\/\//i.test(src) || /^git@|\.git(#.*)?$/i.test(src)) fail('D05', `ADD ${src}: fetch it in a RUN with a checksum, or COPY it from the context`, ins.line);
          else if (!/\.(tar|tar\.gz|tgz|tar\.bz2|tbz2|tar\.xz|txz|tar\.zst)$/i.test(src)) fail('D05', `ADD ${src}: use COPY for files and folders`, ins.line);
        }
      }
      if (ins.keyword === 'RUN') {
        // D06
        if (/\bnpm\s+(?:--?\S+\s+)*(install|i|add)\b/.test(ins.args)) fail('D06', `'${ins.args.slice(0, 60)}': use npm ci (the lockfile, exactly)`, ins.line);
        // D07
        if (/\bapt-get\s+(?:-\S+\s+)*(upgrade|dist-upgrade)\b/.test(ins.args)) fail('D07', 'apt-get upgrade in an image: pin the base image instead', ins.line);
        if (APT_INSTALL.test(ins.args)) {
          if (!/--no-install-recommends\b/.test(ins.args)) fail('D07', 'apt-get install without --no-install-recommends', ins.line);
          if (!/\s(-y|--yes|--assume-yes|-qq?y|-yq)\b/.test(ins.args)) fail('D07', 'apt-get install without -y', ins.line);
          if (!/\bapt-get\s+(?:-\S+\s+)*update\b/.test(ins.args.split(APT_INSTALL)[0] ?? '')) fail('D07', 'apt-get install without apt-get update before it in the same RUN', ins.line);
          if (!/\brm\s+-(?:rf|fr|r)\s+\/var\/lib\/apt\/lists/.test(ins.args)) fail('D07', 'apt-get install without rm -rf /var/lib/apt/lists/* in the same RUN', ins.line);
        } else if (/\bapt-get\s+(?:-\S+\s+)*update\b/.test(ins.args)) {
          fail('D07', 'apt-get update alone in a RUN: its lists go stale in the layer cache', ins.line);
        }
        // D12
        if (/(^|[;&|]\s*|\s)sudo\s/.test(ins.args)) fail('D12', 'sudo in a RUN: switch USER instead', ins.line);
      }
      if (ins.keyword === 'WORKDIR' && !ins.args.startsWith('/') && !ins.args.startsWith('$')) fail('D12', `WORKDIR ${ins.args} is not absolute`, ins.line);
      // D11
      if ((ins.keyword === 'ENTRYPOINT' || ins.keyword === 'CMD') && execForm(ins.args) === undefined) {
        fail('D11', `${ins.keyword} in shell form: signals go to /bin/sh, not to node (use ["node", ...])`, ins.line);
      }
    }
  }
  if (!final.instructions.some((i) => i.keyword === 'ENTRYPOINT' || i.keyword === 'CMD')) fail('D11', 'the final stage has neither ENTRYPOINT nor CMD');

  // D08
  const exposed = new Set<number>();
  for (const ins of final.instructions.filter((i) => i.keyword === 'EXPOSE')) {
    for (const p of ins.args.split(/\s+/)) {
      const m = /^(\d+)(?:\/(tcp|udp))?$/.exec(p);
      if (m) exposed.add(Number(m[1]));
    }
  }
  for (const port of options.ports) if (!exposed.has(port)) fail('D08', `the final stage does not EXPOSE ${port}`);

  // D09: a stage before the final one installs with npm ci and then runs the build.
  const runsBuild = (i: Instruction) => i.keyword === 'RUN' && /\b(npm\s+run\s+build|node\s+scripts\/build\.mjs)\b/.test(i.args);
  const buildStages = stages.filter((s) => s !== final && s.instructions.some(runsBuild));
  if (buildStages.length === 0) fail('D09', 'no stage before the final one runs npm run build (the WASM kernels and dist/)');
  for (const s of buildStages) {
    const ci = s.instructions.findIndex((i) => i.keyword === 'RUN' && /\bnpm\s+ci\b/.test(i.args));
    const build = s.instructions.findIndex(runsBuild);
    if (ci < 0 || ci > build) fail('D09', `stage '${s.name ?? s.index}' runs the build without npm ci before it`, s.line);
  }
  if (final.instructions.some(runsBuild)) fail('D09', 'the final stage builds: the compilers would ship in the image');

  // D10
  const buildNames = new Set(buildStages.map((s) => s.name ?? String(s.index)));
  const earlierNames = new Set(stages.slice(0, -1).map((s) => s.name ?? String(s.index)));
  const copies = final.instructions.filter((i) => i.keyword === 'COPY').map((i) => ({ ins: i, ...copyOperands(i.args) }));
  for (const c of copies) {
    const from = c.flags.get('from');
    if (from !== undefined && !earlierNames.has(from.toLowerCase())) {
      fail('D10', `COPY --from=${from}: not a stage declared before the final one (an index or an external image)`, c.ins.line);
    }
    if (from === undefined) {
      for (const src of c.sources) {
        if (src === '.' || src === './' || /(^|\/)(dist|build|node_modules)\/?$/.test(src)) fail('D10', `COPY ${src} takes artifacts from the build context, not from the build stage`, c.ins.line);
      }
    }
  }
  const copiedFrom = (what: RegExp, names: Set<string>) =>
    copies.some((c) => c.flags.has('from') && names.has(c.flags.get('from')!.toLowerCase()) && c.sources.some((s) => what.test(s)));
  if (!copiedFrom(/(^|\/)dist\/?$/, buildNames)) fail('D10', 'the final stage does not COPY --from the build stage its dist/');
  if (!copiedFrom(/(^|\/)build(\/kernels\.wasm)?\/?$/, buildNames)) fail('D10', 'the final stage does not COPY --from the build stage build/ (kernels.wasm)');
  if (!copiedFrom(/(^|\/)node_modules\/?$/, earlierNames)) fail('D10', 'the final stage does not COPY --from an earlier stage its node_modules');

  return findings;
}

/** The HEALTHCHECK command of the final stage, in exec form (undefined when absent or in shell form). */
export function healthcheckCommand(df: Dockerfile): string[] | undefined {
  const final = df.stages[df.stages.length - 1];
  const health = final?.instructions.filter((i) => i.keyword === 'HEALTHCHECK').pop();
  if (health === undefined) return undefined;
  return execForm(takeFlags(health.args).rest.replace(/^CMD\s+/i, ''));
}

/** The ENV values of a stage (`ENV a=b c=d` and the legacy `ENV a b`). */
export function stageEnv(stage: Stage): Map<string, string> {
  const env = new Map<string, string>();
  for (const ins of stage.instructions.filter((i) => i.keyword === 'ENV')) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(ins.args)) {
      const m = /^(\S+)\s+([\s\S]*)$/.exec(ins.args);
      if (m) env.set(m[1], m[2]);
      continue;
    }
    for (const m of ins.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)/g)) {
      env.set(m[1], m[2].startsWith('"') ? (JSON.parse(m[2]) as string) : m[2]);
    }
  }
  return env;
}

/**
 * A .dockerignore matcher for the patterns this project uses: `*`, `?`, `**`, a leading `!` to re-include, and
 * `#` comments; a pattern that matches a folder excludes everything in it (Docker's semantics, after Go's
 * filepath.Match with `**` for any number of folders).
 */
export function dockerignoreMatcher(text: string): (path: string) => boolean {
  const rules = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = (negate ? l.slice(1) : l).trim().replace(/^\/+/, '').replace(/\/+$/, '');
      let re = '';
      for (let k = 0; k < pattern.length; k++) {
        const ch = pattern[k];
        if (ch === '*' && pattern[k + 1] === '*') {
          k++;
          if (pattern[k + 1] === '/') {
            re += '(?:.*/)?';
            k++;
          } else re += '.*';
        } else if (ch === '*') re += '[^/]*';
        else if (ch === '?') re += '[^/]';
        else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      }
      return { negate, regex: new RegExp(`^${re}(/.*)?$`) };
    });
  return (path: string) => {
    const p = path.replace(/^\.\//, '').replace(/\/+$/, '');
    let excluded = false;
    for (const r of rules) if (r.regex.test(p)) excluded = !r.negate;
    return excluded;
  };
}
