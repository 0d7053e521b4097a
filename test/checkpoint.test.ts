// Checkpointing learner state (DESIGN sections 1, 8): the CheckpointStore contract, FileCheckpointStore (file
// format, atomic writes, crash leftovers, damaged files, safe file names), LearnerPool's initialState and the
// checkpoint operator (when it snapshots, what the meta says, coalescing under a slow store, failed writes,
// flush). Decisions tested here: loadAll reports skipped files through an `onCorrupt` option (default: a process
// warning) and leaves them in place; a checkpoint that does not fit is reported through onRestoreError and the
// learner starts fresh; a store that throws or rejects is a failed write, never an error notification.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, test } from 'node:test';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { from, Subject } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { SnapshotError } from '../src/learners/errors.js';
import { createLearner, type LearnerSpec } from '../src/learners/learner.js';
import { rmsprop } from '../src/learners/optim/transform.js';
import { createCheckpointer } from '../src/streams/checkpoint.js';
import type { CheckpointStore, StoredCheckpoint } from '../src/streams/checkpoint-store.js';
import {
  CHECKPOINT_TEMP_PREFIX, checkpointFileName, crc32, FileCheckpointStore, type CorruptCheckpoint,
} from '../src/streams/file-checkpoint-store.js';
import { LearnerPool } from '../src/streams/learner-pool.js';
import type { LabelEvent, Prediction, PrequentialReport, Rejection, StreamInput, TickEvent } from '../src/streams/messages.js';
import { predictThenLearn } from '../src/streams/predict-then-learn.js';
import type { PrequentialInput } from '../src/streams/prequential.js';

const M = 3;
const OUT = 2;
const spec: LearnerSpec = {
  cell: { kind: 'tanh-rnn', hiddenSize: 8 }, credit: { rule: 'immediate', lambda: 0 }, optimizer: rmsprop(0.01),
  inputSize: M, outputSize: OUT, seed: 7, loss: 'mse',
};
const otherSpec: LearnerSpec = { ...spec, cell: { kind: 'tanh-rnn', hiddenSize: 5 } };

const xOf = (seq: number) => Float32Array.from([Math.sin(seq), Math.cos(0.7 * seq), 0.1 * (seq % 5)]);
const yOf = (seq: number) => Float32Array.from([Math.sin(seq + 0.3), 0.5 * Math.cos(seq)]);
const tick = (seq: number, opts: { y?: boolean; stream?: string } = {}): TickEvent => ({
  kind: 'tick', stream: opts.stream ?? 'a', seq, t: seq * 0.1, x: xOf(seq), ...(opts.y ? { y: yOf(seq) } : {}),
});
const label = (seq: number, stream = 'a'): LabelEvent => ({ kind: 'label', stream, seq, y: yOf(seq) });
const prediction = (seq: number, stream = 'a'): Prediction => ({
  kind: 'prediction', stream, seq, t: seq * 0.1, yhat: Float32Array.from([0, 0]), version: 0, predictedAt: 0,
});
const checkpointOf = (stream: string, version: number, snapshot: Uint8Array): StoredCheckpoint => ({
  meta: { stream, lastSeq: version * 10, version, tick: version + 1, savedAt: 1_700_000_000_000 + version },
  snapshot,
});

const scheduler = () => new TestScheduler((actual, expected) => assert.deepStrictEqual(actual, expected));
/** Lets promise callbacks and I/O callbacks run. */
const settle = () => new Promise<void>((r) => setImmediate(r));
const newPool = (extra: Partial<ConstructorParameters<typeof LearnerPool>[0]> = {}) => new LearnerPool({ spec, maxStreams: 8, ...extra });

const scratch = mkdtempSync(join(tmpdir(), 'driftline-checkpoint-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = () => join(scratch, `d${++dirCount}`);

/** A store that records every checkpoint and confirms at once. */
class RecordingStore implements CheckpointStore {
  readonly saved: StoredCheckpoint[] = [];
  async save(checkpoint: StoredCheckpoint): Promise<void> {
    this.saved.push(checkpoint);
  }
  async loadAll(): Promise<Map<string, StoredCheckpoint>> {
    return new Map(this.saved.map((c) => [c.meta.stream, c]));
  }
}

/** A store whose every save waits until the test releases or fails it; tracks concurrency per stream. */
class GatedStore implements CheckpointStore {
  readonly calls: Array<{ checkpoint: StoredCheckpoint; release: () => void; fail: (e: Error) => void; done: boolean }> = [];
  readonly inFlight = new Map<string, number>();
  maxInFlightPerStream = 0;
  maxInFlightTotal = 0;
  save(checkpoint: StoredCheckpoint): Promise<void> {
    const stream = checkpoint.meta.stream;
    const n = (this.inFlight.get(stream) ?? 0) + 1;
    this.inFlight.set(stream, n);
    this.maxInFlightPerStream = Math.max(this.maxInFlightPerStream, n);
    this.maxInFlightTotal = Math.max(this.maxInFlightTotal, [...this.inFlight.values()].reduce((a, b) => a + b, 0));
    return new Promise<void>((resolve, reject) => {
      const finish = () => {
        call.done = true;
        this.inFlight.set(stream, this.inFlight.get(stream)! - 1);
      };
      const call = {
        checkpoint,
        done: false,
        release: () => (finish(), resolve()),
        fail: (e: Error) => (finish(), reject(e)),
      };
      this.calls.push(call);
    });
  }
  async loadAll(): Promise<Map<string, StoredCheckpoint>> {
    return new Map();
  }
  open() {
    return this.calls.filter((c) => !c.done);
  }
}

/** Collects process warnings of one kind while `body` runs. */
async function warningsDuring(body: () => unknown | Promise<unknown>): Promise<string[]> {
  const seen: string[] = [];
  const listener = (w: Error) => {
    if (w.name === 'CheckpointWarning') seen.push(w.message);
  };
  process.on('warning', listener);
  try {
    await body();
    await settle();
    await settle();
  } finally {
    process.off('warning', listener);
  }
  return seen;
}

/** A learner driven by hand: predicts ticks 0..n-1 and learns each label right after its tick. */
function referenceAfter(n: number, opts: { learnLast: boolean }): ReturnType<typeof createLearner> {
  const learner = createLearner(spec);
  for (let i = 0; i < n; i++) {
    learner.predict(xOf(i));
    if (i < n - 1 || opts.learnLast) learner.learn(yOf(i));
  }
  return learner;
}

describe('crc32', () => {
  test('matches the standard check value and zlib', () => {
    assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
    assert.equal(crc32(new Uint8Array(0)), 0);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 300 }), (a, b) => {
        const whole = new Uint8Array([...a, ...b]);
        assert.equal(crc32(whole), zlib.crc32(whole));
        assert.equal(crc32(b, crc32(a)), crc32(whole));
      }),
    );
  });
});

describe('checkpointFileName', () => {
  const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
  const key = fc.oneof(
    fc.string({ unit: codeUnit, maxLength: 60 }),
    fc.string({ unit: 'binary', maxLength: 120 }),
    // A small alphabet with lone surrogates and case pairs: many near-collisions, and keys past the hashing length.
    fc.string({ unit: fc.constantFrom('a', 'A', '/', '\\', '.', '\uD800', '\uDC00', '\uFFFD', 'é', '\u0000'), maxLength: 210 }),
  );

  test('distinct keys map to distinct, safe file names (property)', () => {
    fc.assert(
      fc.property(fc.uniqueArray(key, { minLength: 2, maxLength: 30 }), (keys) => {
        const names = keys.map(checkpointFileName);
        // Lowercase-only names stay distinct on case-insensitive file systems too.
        assert.equal(new Set(names.map((n) => n.toLowerCase())).size, keys.length);
        for (const name of names) {
          assert.match(name, /^[kuh]-[0-9a-f]*\.ckpt$/);
          assert.ok(name.length <= 199, name);
          assert.equal(basename(name), name);
          assert.ok(!name.startsWith(CHECKPOINT_TEMP_PREFIX));
        }
      }),
      { numRuns: 300 },
    );
  });

  test('hostile and long keys stay inside the directory and apart', () => {
    const long = 'x'.repeat(200);
    const keys = [
      '../x', '..', '.', '/', '', 'a/b', 'a\\b', 'C:\\evil', 'CON', 'nul', 'A', 'a', '\uD800', '\uDC00', '\uFFFD',
      'ünïcødé ストリーム 🚀', long, `${long}y`, `${long}z`, `${'\uD800'.repeat(150)}`, `${'\uDC00'.repeat(150)}`,
      'é'.repeat(200), 'e\u0301'.repeat(100),
    ];
    const dir = resolve('/some/dir');
    const names = keys.map(checkpointFileName);
    assert.equal(new Set(names).size, keys.length);
    for (const name of names) assert.equal(dirname(join(dir, name)), dir, name);
    // Short keys are spelled out: the UTF-8 hex of 'ab' is 6162.
    assert.equal(checkpointFileName('ab'), 'k-6162.ckpt');
    assert.throws(() => checkpointFileName(42 as unknown as string), TypeError);
  });
});

describe('FileCheckpointStore', () => {
  test('creates its directory, validates its arguments', () => {
    const dir = join(freshDir(), 'nested', 'deeper');
    const store = new FileCheckpointStore(dir);
    assert.ok(statSync(dir).isDirectory());
    assert.equal(store.dir, dir);
    assert.throws(() => new FileCheckpointStore(''), TypeError);
    assert.throws(() => new FileCheckpointStore(undefined as unknown as string), TypeError);
    assert.throws(() => new FileCheckpointStore(dir, { onCorrupt: 5 as never }), TypeError);
    const file = join(freshDir() + '-file');
    writeFileSync(file, 'not a directory');
    assert.throws(() => new FileCheckpointStore(file));
  });

  test('round trip of hostile keys; every file is inside the directory; a save replaces the previous one', async () => {
    const parent = freshDir();
    const dir = join(parent, 'store');
    const store = new FileCheckpointStore(dir);
    const keys = ['../x', '/', '', '..', 'ünïcødé 🚀', 'k'.repeat(200), 'K'.repeat(200), '\uD800', '\uDC00'];
    const bytesOf = (i: number, v: number) => Uint8Array.from({ length: 50 + i }, (_, j) => (j * 31 + i * 7 + v) & 0xff);
    for (const [i, k] of keys.entries()) await store.save(checkpointOf(k, 1, bytesOf(i, 1)));
    for (const [i, k] of keys.entries()) await store.save(checkpointOf(k, 2, bytesOf(i, 2)));
    assert.deepEqual(readdirSync(parent), ['store']);
    assert.equal(readdirSync(dir).length, keys.length);
    const loaded = await store.loadAll();
    assert.deepEqual([...loaded.keys()].sort(), [...keys].sort());
    for (const [i, k] of keys.entries()) {
      const c = loaded.get(k)!;
      assert.deepEqual(c.meta, checkpointOf(k, 2, bytesOf(i, 2)).meta);
      assert.deepEqual(c.snapshot, bytesOf(i, 2));
      assert.equal(Object.getPrototypeOf(c.snapshot), Uint8Array.prototype);
    }
    // A second store over the same directory (a restarted process) sees the same.
    const again = await new FileCheckpointStore(dir).loadAll();
    assert.deepEqual([...again.keys()].sort(), [...keys].sort());
  });

  test('the file has the documented layout, read back independently', async () => {
    const dir = freshDir();
    const store = new FileCheckpointStore(dir);
    const snapshot = Uint8Array.from([9, 8, 7, 6, 5]);
    await store.save(checkpointOf('s', 3, snapshot));
    const bytes = readFileSync(join(dir, checkpointFileName('s')));
    assert.equal(bytes.subarray(0, 4).toString('latin1'), 'DLCK');
    assert.equal(bytes.readUInt32LE(4), 1);
    const metaLength = bytes.readUInt32LE(8);
    assert.deepEqual(JSON.parse(bytes.subarray(12, 12 + metaLength).toString('utf8')), checkpointOf('s', 3, snapshot).meta);
    assert.deepEqual(new Uint8Array(bytes.subarray(12 + metaLength, bytes.length - 4)), snapshot);
    assert.equal(bytes.readUInt32LE(bytes.length - 4), zlib.crc32(bytes.subarray(0, bytes.length - 4)));
  });

  test('a corrupt CRC is skipped and reported; the other streams load', async () => {
    const dir = freshDir();
    const problems: CorruptCheckpoint[] = [];
    const store = new FileCheckpointStore(dir, { onCorrupt: (p) => problems.push(p) });
    await store.save(checkpointOf('a', 1, new Uint8Array(64).fill(1)));
    await store.save(checkpointOf('b', 1, new Uint8Array(64).fill(2)));
    const fileB = join(dir, checkpointFileName('b'));
    const bytes = readFileSync(fileB);
    bytes[bytes.length - 20] ^= 0x10;
    writeFileSync(fileB, bytes);
    const loaded = await store.loadAll();
    assert.deepEqual([...loaded.keys()], ['a']);
    assert.equal(problems.length, 1);
    assert.equal(problems[0].file, fileB);
    assert.equal(problems[0].defect, 'crc-mismatch');
    assert.match(problems[0].message, /CRC-32/);
    // The damaged file is left for inspection; the next save of the stream replaces it.
    assert.ok(statSync(fileB).isFile());
    await store.save(checkpointOf('b', 2, new Uint8Array(4).fill(3)));
    assert.equal((await store.loadAll()).get('b')!.meta.version, 2);
    assert.equal(problems.length, 1);
  });

  test('every kind of damage is skipped with its defect; foreign files are left alone; default is a warning', async () => {
    const dir = freshDir();
    const problems: CorruptCheckpoint[] = [];
    const store = new FileCheckpointStore(dir, { onCorrupt: (p) => problems.push(p) });
    const good = (k: string) => store.save(checkpointOf(k, 1, new Uint8Array(32).fill(k.charCodeAt(0))));
    for (const k of ['a', 'b', 'c', 'd', 'e', 'f', 'g']) await good(k);
    const fileOf = (k: string) => join(dir, checkpointFileName(k));
    const rewrite = (k: string, edit: (b: Buffer) => Buffer) => writeFileSync(fileOf(k), edit(readFileSync(fileOf(k))));
    const withCrc = (b: Buffer) => {
      b.writeUInt32LE(zlib.crc32(b.subarray(0, b.length - 4)), b.length - 4);
      return b;
    };
    rewrite('b', (b) => b.subarray(0, 10)); // shorter than header + CRC
    rewrite('c', (b) => b.subarray(0, b.length - 7)); // cut inside the snapshot: the CRC no longer matches
    rewrite('d', (b) => withCrc(Buffer.concat([Buffer.from('XXXX'), b.subarray(4)])));
    rewrite('e', (b) => (b.writeUInt32LE(2, 4), withCrc(b)));
    rewrite('f', (b) => {
      const metaLength = b.readUInt32LE(8);
      b.fill(0x7b, 12, 12 + metaLength); // '{{{{...': not JSON
      return withCrc(b);
    });
    renameSync(fileOf('g'), fileOf('h')); // stream g's file under stream h's name
    mkdirSync(join(dir, 'k-7a.ckpt')); // a directory where a checkpoint would be: unreadable
    writeFileSync(join(dir, 'notes.txt'), 'kept');
    const loaded = await store.loadAll();
    assert.deepEqual([...loaded.keys()], ['a']);
    const defects = Object.fromEntries(problems.map((p) => [basename(p.file), p.defect]));
    assert.deepEqual(defects, {
      [checkpointFileName('b')]: 'truncated',
      [checkpointFileName('c')]: 'crc-mismatch',
      [checkpointFileName('d')]: 'bad-magic',
      [checkpointFileName('e')]: 'unsupported-format',
      [checkpointFileName('f')]: 'bad-meta',
      [checkpointFileName('h')]: 'misplaced',
      'k-7a.ckpt': 'unreadable',
    });
    assert.equal(readFileSync(join(dir, 'notes.txt'), 'utf8'), 'kept');

    const warnings = await warningsDuring(() => new FileCheckpointStore(dir).loadAll());
    assert.equal(warnings.length, 7);
    assert.ok(warnings.some((w) => w.includes('crc-mismatch')));
  });

  test('a write interrupted by a crash leaves the previous checkpoint; its temp file is removed', async () => {
    const dir = freshDir();
    const store = new FileCheckpointStore(dir);
    const complete = checkpointOf('a', 1, new Uint8Array(100).fill(1));
    await store.save(complete);
    // What a writer killed before its rename leaves: a temp file with part of the next checkpoint.
    const leftover = join(dir, `${CHECKPOINT_TEMP_PREFIX}99999-1`);
    writeFileSync(leftover, readFileSync(join(dir, checkpointFileName('a'))).subarray(0, 40));
    const loaded = await store.loadAll();
    assert.deepEqual(loaded.get('a'), complete);
    assert.deepEqual(readdirSync(dir), [checkpointFileName('a')]);
  });

  test('a missing directory loads as empty; an invalid checkpoint is refused and leaves nothing behind', async () => {
    const dir = freshDir();
    const store = new FileCheckpointStore(dir);
    await assert.rejects(store.save(checkpointOf('a', 1, [1, 2] as unknown as Uint8Array)), TypeError);
    await assert.rejects(store.save({ meta: { ...checkpointOf('a', 1, new Uint8Array(1)).meta, lastSeq: NaN }, snapshot: new Uint8Array(1) }), TypeError);
    await assert.rejects(store.save({ meta: { ...checkpointOf('a', 1, new Uint8Array(1)).meta, stream: 5 as never }, snapshot: new Uint8Array(1) }), TypeError);
    assert.deepEqual(readdirSync(dir), []);
    rmSync(dir, { recursive: true });
    assert.equal((await store.loadAll()).size, 0);
    await assert.rejects(store.save(checkpointOf('a', 1, new Uint8Array(1))));
  });
});

describe('FileCheckpointStore across a killed process', () => {
  const childSource = `
const [moduleUrl, dir, sizeArg, mode, targetArg] = process.argv.slice(2);
const { FileCheckpointStore } = await import(moduleUrl);
const fsp = await import('node:fs/promises');
const size = Number(sizeArg);
const target = Number(targetArg);
const say = (line) => process.stdout.write(line + '\\n');
const hang = () => { setInterval(() => {}, 1000); return new Promise(() => {}); };
let gen = 0;
const probe = await fsp.open(new URL(import.meta.url), 'r');
const FileHandle = Object.getPrototypeOf(probe);
await probe.close();
if (mode === 'torn') {
  const writeFile = FileHandle.writeFile;
  FileHandle.writeFile = async function (data, ...rest) {
    if (gen <= target) return writeFile.call(this, data, ...rest);
    await this.write(data, 0, data.length >> 1);
    say('stuck');
    return hang();
  };
}
if (mode === 'unsynced') {
  const sync = FileHandle.sync;
  FileHandle.sync = async function () {
    if (gen <= target) return sync.call(this);
    say('stuck');
    return hang();
  };
}
const store = new FileCheckpointStore(dir);
for (gen = 1; ; gen++) {
  const snapshot = new Uint8Array(size).fill(gen & 255);
  await store.save({ meta: { stream: 's', lastSeq: gen, version: gen, tick: gen, savedAt: Date.now() }, snapshot });
  say('saved ' + gen);
}
`;
  const childFile = join(scratch, 'checkpoint-writer.mjs');
  const moduleUrl = pathToFileURL(resolve('src/streams/file-checkpoint-store.ts')).href;

  /** Runs the writer child until `stopWhen` says so, then SIGKILLs it; returns the last generation it confirmed. */
  function runAndKill(dir: string, size: number, mode: string, target: number, stopWhen: (line: string) => boolean): Promise<{ confirmed: number; stuck: boolean }> {
    writeFileSync(childFile, childSource);
    return new Promise((resolvePromise, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', childFile, moduleUrl, dir, String(size), mode, String(target)], {
        cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'],
      });
      let confirmed = 0;
      let stuck = false;
      let buffered = '';
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      child.stdout.on('data', (d) => {
        buffered += d;
        let nl;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (line.startsWith('saved ')) confirmed = Number(line.slice(6));
          if (line === 'stuck') stuck = true;
          if (stopWhen(line)) child.kill('SIGKILL');
        }
      });
      child.on('error', reject);
      child.on('close', (code, signal) => {
        if (signal !== 'SIGKILL') reject(new Error(`writer exited with ${code}: ${stderr}`));
        else resolvePromise({ confirmed, stuck });
      });
    });
  }

  for (const mode of ['torn', 'unsynced'] as const) {
    test(`killed in the middle of a write (${mode === 'torn' ? 'half the bytes written' : 'written, not yet synced or renamed'}): loadAll returns the last complete checkpoint`, async () => {
      const dir = freshDir();
      const size = 1 << 16;
      const target = 3;
      const { confirmed, stuck } = await runAndKill(dir, size, mode, target, (line) => line === 'stuck');
      assert.ok(stuck);
      assert.equal(confirmed, target);
      const names = readdirSync(dir);
      const temps = names.filter((n) => n.startsWith(CHECKPOINT_TEMP_PREFIX));
      assert.equal(temps.length, 1, `a temp file is left: ${names.join(', ')}`);
      const fullSize = statSync(join(dir, checkpointFileName('s'))).size;
      const tempSize = statSync(join(dir, temps[0])).size;
      if (mode === 'torn') assert.ok(tempSize < fullSize);
      else assert.equal(tempSize, fullSize);
      const problems: CorruptCheckpoint[] = [];
      const loaded = await new FileCheckpointStore(dir, { onCorrupt: (p) => problems.push(p) }).loadAll();
      assert.deepEqual(problems, []);
      const c = loaded.get('s')!;
      assert.equal(c.meta.version, target);
      assert.deepEqual(c.snapshot, new Uint8Array(size).fill(target));
      assert.deepEqual(readdirSync(dir), [checkpointFileName('s')]);
    });
  }

  test('killed at an arbitrary moment of a write loop: a complete checkpoint at least as new as the last confirmed one', async () => {
    const dir = freshDir();
    const size = 1 << 20;
    const { confirmed } = await runAndKill(dir, size, 'free', 0, (line) => line === 'saved 5');
    assert.ok(confirmed >= 5);
    const problems: CorruptCheckpoint[] = [];
    const c = (await new FileCheckpointStore(dir, { onCorrupt: (p) => problems.push(p) }).loadAll()).get('s')!;
    assert.deepEqual(problems, []);
    assert.ok(c.meta.version >= confirmed && c.meta.version <= confirmed + 1, `loaded ${c.meta.version}, confirmed ${confirmed}`);
    assert.equal(c.snapshot.length, size);
    assert.ok(c.snapshot.every((b) => b === (c.meta.version & 255)));
    assert.ok(readdirSync(dir).every((n) => !n.startsWith(CHECKPOINT_TEMP_PREFIX)));
  });
});

describe('LearnerPool initialState', () => {
  test('a new learner resumes from its checkpoint and goes on exactly like the original', () => {
    const original = referenceAfter(12, { learnLast: true });
    const saved = original.snapshot();
    const restoreErrors: unknown[] = [];
    const pool = newPool({
      initialState: new Map([['a', { meta: { stream: 'a', lastSeq: 11, version: 12, tick: 11, savedAt: 0 }, snapshot: saved }]]),
      onRestoreError: (e) => restoreErrors.push(e),
    });
    const restored = pool.get('a');
    assert.deepEqual(restored.snapshot(), saved);
    assert.equal(restored.version, 12);
    assert.equal(restored.tick, 11);
    for (let i = 12; i < 20; i++) {
      assert.deepEqual(Float32Array.from(restored.predict(xOf(i))), Float32Array.from(original.predict(xOf(i))), `tick ${i}`);
      restored.learn(yOf(i));
      original.learn(yOf(i));
    }
    // Other keys start fresh.
    assert.deepEqual(pool.get('b').snapshot(), createLearner(spec).snapshot());
    assert.deepEqual(restoreErrors, []);
  });

  test('a checkpoint that does not fit goes to onRestoreError and the learner starts fresh', () => {
    const foreign = createLearner(otherSpec);
    foreign.predict(xOf(0));
    const errors: Array<[Error, string]> = [];
    const pool = newPool({
      initialState: new Map<string, StoredCheckpoint>([
        ['other-spec', { meta: { stream: 'other-spec', lastSeq: 0, version: 0, tick: 0, savedAt: 0 }, snapshot: foreign.snapshot() }],
        ['garbage', { meta: { stream: 'garbage', lastSeq: 0, version: 0, tick: 0, savedAt: 0 }, snapshot: Uint8Array.from([1, 2, 3]) }],
        ['truncated', { meta: { stream: 'truncated', lastSeq: 0, version: 0, tick: 0, savedAt: 0 }, snapshot: referenceAfter(3, { learnLast: true }).snapshot().subarray(0, 100) }],
        ['null', null as unknown as StoredCheckpoint],
      ]),
      onRestoreError: (e, stream) => errors.push([e, stream]),
    });
    const fresh = createLearner(spec).snapshot();
    for (const key of ['other-spec', 'garbage', 'truncated', 'null']) {
      assert.deepEqual(pool.get(key).snapshot(), fresh, key);
    }
    assert.deepEqual(errors.map(([, s]) => s), ['other-spec', 'garbage', 'truncated', 'null']);
    assert.ok(errors.slice(0, 3).every(([e]) => e instanceof SnapshotError));
    assert.ok(errors[3][0] instanceof Error);
    assert.equal(pool.size, 4);
  });

  test('each checkpoint is used once per pool; default report is a warning; a throwing callback propagates', async () => {
    const saved = referenceAfter(5, { learnLast: true }).snapshot();
    const state = new Map([['a', { meta: { stream: 'a', lastSeq: 4, version: 5, tick: 4, savedAt: 0 }, snapshot: saved }]]);
    const pool = newPool({ initialState: state });
    assert.deepEqual(pool.get('a').snapshot(), saved);
    pool.delete('a');
    assert.deepEqual(pool.get('a').snapshot(), createLearner(spec).snapshot());

    const badState = new Map([['a', { ...state.get('a')!, snapshot: Uint8Array.from([0]) }]]);
    const warnings = await warningsDuring(() => newPool({ initialState: badState }).get('a'));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /stream 'a' starts fresh/);

    const boom = new Error('callback failed');
    const throwing = newPool({ initialState: badState, onRestoreError: () => { throw boom; } });
    assert.throws(() => throwing.get('a'), (e) => e === boom);
    assert.ok(throwing.has('a'));
    assert.doesNotThrow(() => throwing.get('a'));

    assert.throws(() => newPool({ initialState: [] as never }), TypeError);
    assert.throws(() => newPool({ onRestoreError: 'no' as never }), TypeError);
  });
});

describe('createCheckpointer (marbles)', () => {
  const setup = (everyTicks = 2, store: CheckpointStore = new RecordingStore(), onError?: (e: Error, s: string) => void) => {
    const pool = newPool();
    pool.get('a');
    const checkpointer = createCheckpointer({ pool, store, everyTicks, ...(onError ? { onError } : {}) });
    return { pool, checkpointer, store };
  };

  test('empty', () => scheduler().run(({ cold, expectObservable }) => {
    expectObservable(cold<PrequentialInput>('|').pipe(setup().checkpointer.operator)).toBe('|');
  }));

  test('values pass through unchanged and in order; snapshots are taken at the due predictions', async () => {
    const { checkpointer, store, pool } = setup(2);
    const report = { kind: 'prequential', stream: 'a', seq: 1 } as unknown as PrequentialReport;
    const refused: Rejection = { kind: 'rejected', reason: 'malformed', message: 'bad' };
    const v: Record<string, PrequentialInput> = {
      a: prediction(0), b: prediction(1), r: report, x: refused, z: prediction(0, 'zz'), c: prediction(2), d: prediction(3),
    };
    scheduler().run(({ cold, expectObservable }) => {
      expectObservable(cold('a-b-r-x-z-c-d|', v).pipe(checkpointer.operator)).toBe('a-b-r-x-z-c-d|', v);
    });
    const inputs = [v.a, v.b, v.r, v.x, v.z, v.c, v.d];
    const seen: PrequentialInput[] = [];
    from(inputs).pipe(setup(2).checkpointer.operator).subscribe((m) => seen.push(m));
    assert.equal(seen.length, inputs.length);
    assert.ok(seen.every((m, i) => m === inputs[i]), 'the same message objects');
    await settle();
    const recorded = (store as RecordingStore).saved;
    // Stream 'zz' has no learner in the pool: never snapshotted. Stream 'a': at its 2nd and 4th predictions.
    assert.deepEqual(recorded.map((c) => [c.meta.stream, c.meta.lastSeq]), [['a', 1], ['a', 3]]);
    assert.deepEqual(recorded[0].snapshot, pool.get('a').snapshot());
    assert.equal(checkpointer.stats.saved, 2);
  });

  test('error passes through', () => scheduler().run(({ cold, expectObservable }) => {
    expectObservable(cold('a-#', { a: prediction(0) }).pipe(setup().checkpointer.operator)).toBe('a-#', { a: prediction(0) });
  }));

  test('never-ending', () => scheduler().run(({ cold, expectObservable }) => {
    expectObservable(cold('a-b-', { a: prediction(0), b: prediction(1) }).pipe(setup().checkpointer.operator)).toBe('a-b-', { a: prediction(0), b: prediction(1) });
  }));

  test('unsubscribe releases the source', () => scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
    const source = cold('a-b-c|', { a: prediction(0), b: prediction(1), c: prediction(2) });
    expectObservable(source.pipe(setup().checkpointer.operator), '^--!').toBe('a-b', { a: prediction(0), b: prediction(1) });
    expectSubscriptions(source.subscriptions).toBe('^--!');
  }));

  test('a store that throws is a failed write, not an error notification', async () => {
    const errors: Array<[Error, string]> = [];
    const boom = new Error('disk on fire');
    const throwing: CheckpointStore = { save: () => { throw boom; }, loadAll: async () => new Map() };
    const { checkpointer } = setup(1, throwing, (e, s) => errors.push([e, s]));
    scheduler().run(({ cold, expectObservable }) => {
      const v = { a: prediction(0), b: prediction(1) };
      expectObservable(cold('a-b|', v).pipe(checkpointer.operator)).toBe('a-b|', v);
    });
    await settle();
    assert.deepEqual(errors, [[boom, 'a'], [boom, 'a']]);
    assert.deepEqual({ ...checkpointer.stats }, { saved: 0, failed: 2, coalesced: 0 });
  });

  test('a learner that throws while snapshotting is an error notification (a programming error)', () => {
    const { checkpointer, pool } = setup(1);
    const boom = new Error('snapshot failed');
    pool.get('a').snapshot = () => { throw boom; };
    scheduler().run(({ cold, expectObservable }) => {
      expectObservable(cold('a-b', { a: prediction(0), b: prediction(1) }).pipe(checkpointer.operator)).toBe('#', undefined, boom);
    });
  });

  test('configuration errors throw at creation', () => {
    const pool = newPool();
    const store = new RecordingStore();
    assert.throws(() => createCheckpointer({ pool, store, everyTicks: 0 }), RangeError);
    assert.throws(() => createCheckpointer({ pool, store, everyTicks: 1.5 }), RangeError);
    assert.throws(() => createCheckpointer({ pool: {} as LearnerPool, store, everyTicks: 1 }), TypeError);
    assert.throws(() => createCheckpointer({ pool, store: {} as CheckpointStore, everyTicks: 1 }), TypeError);
    assert.throws(() => createCheckpointer({ pool, store, everyTicks: 1, onError: 'x' as never }), TypeError);
    assert.throws(() => createCheckpointer(undefined as never), TypeError);
  });
});

describe('createCheckpointer with predictThenLearn', () => {
  /** predictThenLearn -> checkpointer over a subject; the subscription stays open so the pool keeps its learners. */
  function pipeline(pool: LearnerPool, store: CheckpointStore, everyTicks: number, onError?: (e: Error, s: string) => void) {
    const checkpointer = createCheckpointer({ pool, store, everyTicks, ...(onError ? { onError } : {}) });
    const input = new Subject<StreamInput>();
    const out: PrequentialInput[] = [];
    let error: unknown;
    input.pipe(predictThenLearn({ pool: () => pool, recoveryTicks: 0, maxDelay: 8 }), checkpointer.operator)
      .subscribe({ next: (m) => out.push(m), error: (e) => (error = e) });
    return { checkpointer, input, out, errorOf: () => error };
  }

  test('the meta and bytes of each snapshot are those of the learner at that prediction', async () => {
    const store = new RecordingStore();
    const { input } = pipeline(newPool(), store, 4);
    for (let i = 0; i < 10; i++) input.next(tick(i, { y: true }));
    await settle();
    // At the prediction of tick k (labels in the frame), the learner has predicted k and learned 0..k-1.
    assert.deepEqual(store.saved.map((c) => ({ ...c.meta, savedAt: 0 })), [
      { stream: 'a', lastSeq: 3, version: 3, tick: 3, savedAt: 0 },
      { stream: 'a', lastSeq: 7, version: 7, tick: 7, savedAt: 0 },
    ]);
    assert.deepEqual(store.saved[0].snapshot, referenceAfter(4, { learnLast: false }).snapshot());
    assert.deepEqual(store.saved[1].snapshot, referenceAfter(8, { learnLast: false }).snapshot());
    assert.ok(store.saved.every((c) => Math.abs(c.meta.savedAt - Date.now()) < 60_000));
  });

  test('with late labels the version counts only the labels that arrived before the prediction', async () => {
    const store = new RecordingStore();
    const { input } = pipeline(newPool(), store, 3);
    // Each label comes two ticks late: tick i, then the label of tick i - 2.
    for (let i = 0; i < 9; i++) {
      input.next(tick(i));
      if (i >= 2) input.next(label(i - 2));
      await settle(); // no write is still in flight when the next is due
    }
    // Predictions of ticks 2, 5, 8: labels 0..k-3 have arrived by then (the label of k-2 comes after tick k).
    assert.deepEqual(store.saved.map((c) => [c.meta.lastSeq, c.meta.version, c.meta.tick]), [[2, 0, 2], [5, 3, 5], [8, 6, 8]]);
  });

  test('round trip through files: restored learners match the saved bytes and predict like the originals', async () => {
    const dir = freshDir();
    const pool = newPool();
    const original = pipeline(pool, new FileCheckpointStore(dir), 4);
    const { checkpointer, input } = original;
    for (let i = 0; i < 10; i++) {
      input.next(tick(i, { y: true }));
      input.next(tick(i, { y: true, stream: '../b' }));
    }
    input.next(tick(10, { stream: '../b' }));
    input.next(label(10, '../b')); // learned after b's last prediction
    await checkpointer.flush();
    assert.equal(checkpointer.stats.failed, 0);

    const loaded = await new FileCheckpointStore(dir).loadAll();
    assert.deepEqual([...loaded.keys()].sort(), ['../b', 'a']);
    assert.deepEqual({ ...loaded.get('a')!.meta, savedAt: 0 }, { stream: 'a', lastSeq: 9, version: 10, tick: 9, savedAt: 0 });
    assert.deepEqual({ ...loaded.get('../b')!.meta, savedAt: 0 }, { stream: '../b', lastSeq: 10, version: 11, tick: 10, savedAt: 0 });
    for (const key of ['a', '../b']) assert.deepEqual(loaded.get(key)!.snapshot, pool.get(key).snapshot(), key);

    const restoredPool = newPool({ initialState: loaded, onRestoreError: (e) => assert.fail(e) });
    const restored = pipeline(restoredPool, new RecordingStore(), 1000);
    for (const key of ['a', '../b']) assert.deepEqual(restoredPool.get(key).snapshot(), loaded.get(key)!.snapshot, key);

    // Both go on with the same ticks and labels.
    const continuation: StreamInput[] = [];
    for (let i = 10; i < 16; i++) continuation.push(tick(i, { y: true }), tick(i + 1, { y: true, stream: '../b' }));
    const predictionsOf = (feed: { input: Subject<StreamInput>; out: PrequentialInput[] }) => {
      const start = feed.out.length;
      for (const m of continuation) feed.input.next(m);
      return feed.out.slice(start).filter((m): m is Prediction => m.kind === 'prediction').map((p) => [p.stream, p.seq, p.version, Array.from(p.yhat)]);
    };
    const fromOriginal = predictionsOf(original);
    const fromRestored = predictionsOf(restored);
    assert.equal(fromOriginal.length, 12);
    assert.deepEqual(fromRestored, fromOriginal);
    assert.deepEqual(restoredPool.get('a').snapshot(), pool.get('a').snapshot());
  });

  test('coalescing under a slow store: one write in flight per stream, the newest waiting one wins', async () => {
    const store = new GatedStore();
    const { checkpointer, input } = pipeline(newPool(), store, 1);
    input.next(tick(0, { y: true }));
    await settle();
    assert.equal(store.open().length, 1);
    for (let i = 1; i <= 3; i++) input.next(tick(i, { y: true })); // 1 waits, 2 replaces it, 3 replaces 2
    input.next(tick(0, { y: true, stream: 'b' })); // another stream writes alongside
    await settle();
    assert.deepEqual(store.open().map((c) => [c.checkpoint.meta.stream, c.checkpoint.meta.lastSeq]), [['a', 0], ['b', 0]]);
    assert.equal(checkpointer.stats.coalesced, 2);
    store.calls[0].release();
    await settle();
    assert.deepEqual(store.open().map((c) => [c.checkpoint.meta.stream, c.checkpoint.meta.lastSeq]), [['b', 0], ['a', 3]]);
    const newest = store.open()[1].checkpoint;
    assert.equal(newest.meta.version, 3);
    assert.deepEqual(newest.snapshot, referenceAfter(4, { learnLast: false }).snapshot());
    for (const c of store.open()) c.release();
    await settle();
    assert.deepEqual({ ...checkpointer.stats }, { saved: 3, failed: 0, coalesced: 2 });
    assert.equal(store.maxInFlightPerStream, 1);
    assert.equal(store.maxInFlightTotal, 2);
    // Idle again: the next snapshot goes straight to the store.
    input.next(tick(4, { y: true }));
    await settle();
    assert.deepEqual(store.open().map((c) => c.checkpoint.meta.lastSeq), [4]);
  });

  test('failed writes are counted and reported; the stream and the other streams go on', async () => {
    const errors: Array<[string, string]> = [];
    const failing: CheckpointStore = {
      save: async (c) => {
        if (c.meta.stream === 'b') throw new Error(`no room for ${c.meta.lastSeq}`);
      },
      loadAll: async () => new Map(),
    };
    const { checkpointer, input, out, errorOf } = pipeline(newPool(), failing, 2, (e, s) => errors.push([s, e.message]));
    for (let i = 0; i < 6; i++) {
      input.next(tick(i, { y: true }));
      input.next(tick(i, { y: true, stream: 'b' }));
      await settle(); // each write finishes before the next is due: nothing coalesces
    }
    assert.deepEqual(errors, [['b', 'no room for 1'], ['b', 'no room for 3'], ['b', 'no room for 5']]);
    assert.deepEqual({ ...checkpointer.stats }, { saved: 3, failed: 3, coalesced: 0 });
    assert.equal(errorOf(), undefined);
    assert.equal(out.filter((m) => m.kind === 'prediction').length, 12);
    assert.equal(out.filter((m) => m.kind === 'scored').length, 12);
  });

  test('a throwing onError and the default onError end in process warnings, never a crash', async () => {
    const failing: CheckpointStore = { save: () => Promise.reject(new Error('read-only file system')), loadAll: async () => new Map() };
    const warnings = await warningsDuring(async () => {
      const throwing = pipeline(newPool(), failing, 1, () => { throw new Error('handler bug'); });
      throwing.input.next(tick(0));
      const silent = pipeline(newPool(), failing, 1);
      silent.input.next(tick(0));
      await settle();
      assert.equal(throwing.checkpointer.stats.failed, 1);
      assert.equal(silent.checkpointer.stats.failed, 1);
    });
    assert.equal(warnings.length, 2);
    assert.ok(warnings.some((w) => /onError callback threw: Error: handler bug/.test(w)));
    assert.ok(warnings.some((w) => /checkpoint of stream 'a' not written: read-only file system/.test(w)));
  });

  test('flush snapshots every learner now and resolves only when every write, in flight and waiting, is done', async () => {
    const store = new GatedStore();
    const pool = newPool();
    const failures: string[] = [];
    const { checkpointer, input } = pipeline(pool, store, 3, (e, s) => failures.push(`${s}: ${e.message}`));
    for (let i = 0; i < 3; i++) input.next(tick(i, { y: true })); // snapshot of a at 2, in flight
    input.next(tick(0, { stream: 'b' }));
    input.next(label(0, 'b')); // learned after b's last prediction
    pool.get('idle'); // a learner no prediction has passed for: nothing to say about its lastSeq
    await settle();
    assert.equal(store.open().length, 1);

    let flushed = false;
    const flushing = checkpointer.flush().then(() => (flushed = true));
    await settle();
    // a: its flush snapshot waits behind the write in flight; b: written now.
    assert.deepEqual(store.open().map((c) => [c.checkpoint.meta.stream, c.checkpoint.meta.lastSeq, c.checkpoint.meta.version]), [['a', 2, 2], ['b', 0, 1]]);
    store.open()[1].release();
    await settle();
    assert.equal(flushed, false);
    store.open()[0].release(); // the first write of a; its flush snapshot starts now
    await settle();
    assert.equal(flushed, false);
    const flushOfA = store.open();
    assert.deepEqual(flushOfA.map((c) => [c.checkpoint.meta.stream, c.checkpoint.meta.lastSeq, c.checkpoint.meta.version]), [['a', 2, 3]]);
    assert.deepEqual(flushOfA[0].checkpoint.snapshot, referenceAfter(3, { learnLast: true }).snapshot());
    flushOfA[0].fail(new Error('gone')); // a failed write also finishes the flush
    await flushing;
    assert.equal(flushed, true);
    assert.deepEqual({ ...checkpointer.stats }, { saved: 2, failed: 1, coalesced: 0 });
    assert.deepEqual(failures, ['a: gone']);
    assert.ok(store.calls.every((c) => c.checkpoint.meta.stream !== 'idle'));
    // The flush snapshot counts as the stream's last one: the next is due everyTicks predictions later.
    for (let i = 3; i < 5; i++) input.next(tick(i, { y: true }));
    await settle();
    assert.equal(store.open().length, 0);
    input.next(tick(5, { y: true }));
    await settle();
    assert.deepEqual(store.open().map((c) => c.checkpoint.meta.lastSeq), [5]);
    store.open()[0].release();
    // Nothing to do: resolves at once.
    await settle();
    await Promise.race([
      createCheckpointer({ pool: newPool(), store: new RecordingStore(), everyTicks: 1 }).flush(),
      new Promise((_, reject) => setTimeout(() => reject(new Error('flush of an empty pool hangs')), 1000)),
    ]);
  });
});
