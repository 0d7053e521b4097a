// Checkpointing learner state (DESIGN sections 1, 6, 8): the CheckpointStore contract, FileCheckpointStore (file
// format, atomic writes, crash leftovers, damaged files, safe file names), LearnerPool (initialState and offer()
// used once, the policy for a checkpoint that does not restore, state parts: snapshotStream, takeRestoredPart,
// evict) and the checkpointer (its operator only notes predictions; settle() takes the snapshots that came due,
// by everyTicks or everySeconds, once the input's frame is fully applied; settleQuiet, checkpointNow, unconfirmed,
// writesInFlight, onSaved; what the meta and parts say; coalescing under a slow store; failed writes; flush).
// Decisions tested here: loadAll moves damaged files to <dir>/quarantine/ and reports them through an `onCorrupt`
// option (default: a process warning), see also checkpoint-quarantine.test.ts; a checkpoint that does not restore
// (another spec, damaged bytes, a part that does not check) is reported through onRestoreError (default: a process
// warning) and the stream is then refused for good (StreamUnavailableError, the default 'refuse' policy) or starts
// fresh ('fresh'); a store that throws or rejects is a failed write, never an error notification. Tests that drive
// predictThenLearn and the checkpointer by hand call settle() after each input, as the pipeline does.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, test } from 'node:test';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { from, Observable, Subject } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { SnapshotError } from '../src/learners/errors.js';
import { createLearner, type Learner, type LearnerSpec } from '../src/learners/learner.js';
import { rmsprop } from '../src/learners/optim/transform.js';
import { createCheckpointer, type Checkpointer, type CheckpointerOptions } from '../src/streams/checkpoint.js';
import type { CheckpointMeta, CheckpointStore, StoredCheckpoint } from '../src/streams/checkpoint-store.js';
import {
  CHECKPOINT_TEMP_PREFIX, checkpointFileName, crc32, FileCheckpointStore, type CorruptCheckpoint,
} from '../src/streams/file-checkpoint-store.js';
import { LearnerPool, StreamUnavailableError, type StreamStatePart } from '../src/streams/learner-pool.js';
import type { LabelEvent, Prediction, PrequentialReport, Rejection, StreamInput, TickEvent } from '../src/streams/messages.js';
import { PREDICT_THEN_LEARN_PART, predictThenLearn, type PredictThenLearnPart } from '../src/streams/predict-then-learn.js';
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
  async list(): Promise<Map<string, CheckpointMeta>> {
    return new Map([...(await this.loadAll())].map(([k, c]) => [k, c.meta]));
  }
  async load(stream: string): Promise<StoredCheckpoint | undefined> {
    return (await this.loadAll()).get(stream);
  }
  async quarantine(stream: string): Promise<string> {
    throw new Error(`RecordingStore: no quarantine (stream ${stream})`);
  }
}

/** A store from its save alone: the read side is empty. */
const saveOnlyStore = (save: CheckpointStore['save']): CheckpointStore => ({
  save,
  loadAll: async () => new Map(),
  list: async () => new Map(),
  load: async () => undefined,
  quarantine: async (stream) => {
    throw new Error(`no checkpoint of ${stream}`);
  },
});

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
  async list(): Promise<Map<string, CheckpointMeta>> {
    return new Map();
  }
  async load(): Promise<StoredCheckpoint | undefined> {
    return undefined;
  }
  async quarantine(stream: string): Promise<string> {
    throw new Error(`GatedStore: no quarantine (stream ${stream})`);
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

/** A registered state part for pool tests: holds bytes per stream, records drops and checks; bytes must start with 0x5a. */
function testPart(name = 'test-part') {
  const state = new Map<string, Uint8Array>();
  const dropped: string[] = [];
  const checked: Array<{ bytes: Uint8Array; learner: Learner }> = [];
  const part: StreamStatePart = {
    name,
    save: (stream) => state.get(stream)?.slice(),
    drop: (stream) => {
      dropped.push(stream);
      state.delete(stream);
    },
    check: (bytes, learner) => {
      checked.push({ bytes, learner });
      if (bytes[0] !== 0x5a) throw new Error(`${name}: bytes that do not restore`);
    },
  };
  return { part, state, dropped, checked };
}

/** Mirrors the pipeline: each input goes through the checkpointer's operator, then `settle()` runs. */
const settlingEach = (checkpointer: Checkpointer) => (source: Observable<PrequentialInput>) =>
  new Observable<PrequentialInput>((subscriber) => {
    const input = new Subject<PrequentialInput>();
    const output = input.pipe(checkpointer.operator).subscribe(subscriber);
    const upstream = source.subscribe({
      next: (m) => {
        input.next(m);
        checkpointer.settle();
      },
      error: (e) => input.error(e),
      complete: () => input.complete(),
    });
    return () => {
      upstream.unsubscribe();
      output.unsubscribe();
    };
  });

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
    assert.equal(bytes.readUInt32LE(4), 2);
    const metaLength = bytes.readUInt32LE(8);
    assert.deepEqual(JSON.parse(bytes.subarray(12, 12 + metaLength).toString('utf8')), {
      ...checkpointOf('s', 3, snapshot).meta, layout: { snapshotBytes: 5, partsBytes: 4 },
    });
    assert.deepEqual(new Uint8Array(bytes.subarray(12 + metaLength, 12 + metaLength + 5)), snapshot);
    // An empty parts section: its count alone.
    assert.equal(bytes.readUInt32LE(12 + metaLength + 5), 0);
    assert.equal(bytes.length, 12 + metaLength + 5 + 4 + 4);
    assert.equal(bytes.readUInt32LE(bytes.length - 4), zlib.crc32(bytes.subarray(0, bytes.length - 4)));
  });

  test('a corrupt CRC is quarantined and reported; the other streams load', async () => {
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
    assert.equal(problems[0].original, fileB);
    assert.equal(dirname(problems[0].file), join(dir, 'quarantine'));
    assert.equal(problems[0].defect, 'crc-mismatch');
    assert.match(problems[0].message, /CRC-32/);
    // The damaged file is moved aside, byte for byte; the next save of the stream writes a fresh file.
    assert.deepEqual(readFileSync(problems[0].file), bytes);
    await store.save(checkpointOf('b', 2, new Uint8Array(4).fill(3)));
    assert.equal((await store.loadAll()).get('b')!.meta.version, 2);
    assert.deepEqual(readFileSync(problems[0].file), bytes);
    assert.equal(problems.length, 1);
  });

  test('every kind of damage is quarantined with its defect; foreign files are left alone; default is a warning', async () => {
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
    rewrite('c', (b) => b.subarray(0, b.length - 7)); // cut inside the snapshot: shorter than the meta says
    rewrite('d', (b) => withCrc(Buffer.concat([Buffer.from('XXXX'), b.subarray(4)])));
    rewrite('e', (b) => (b.writeUInt32LE(3, 4), withCrc(b)));
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
    const defects = Object.fromEntries(problems.map((p) => [basename(p.original), p.defect]));
    assert.deepEqual(defects, {
      [checkpointFileName('b')]: 'truncated',
      [checkpointFileName('c')]: 'truncated',
      [checkpointFileName('d')]: 'bad-magic',
      [checkpointFileName('e')]: 'unsupported-format',
      [checkpointFileName('f')]: 'bad-meta',
      [checkpointFileName('h')]: 'misplaced',
      'k-7a.ckpt': 'unreadable',
    });
    assert.equal(readFileSync(join(dir, 'notes.txt'), 'utf8'), 'kept');
    assert.deepEqual(readdirSync(dir).sort(), [checkpointFileName('a'), 'notes.txt', 'quarantine'].sort());
    // Each damaged file beside a note of why it was moved.
    assert.equal(readdirSync(join(dir, 'quarantine')).length, 14);
    assert.ok(problems.every((p) => readFileSync(`${p.file}.txt`, 'utf8').includes(p.defect)));

    rewrite('a', (b) => (b[b.length - 5] ^= 1, b));
    const warnings = await warningsDuring(() => new FileCheckpointStore(dir).loadAll());
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /quarantined checkpoint \(crc-mismatch\).*moved to .*quarantine/);
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
    const checkpoint: StoredCheckpoint = { meta: { stream: 'a', lastSeq: 11, version: 12, tick: 11, savedAt: 0 }, snapshot: saved };
    const restoreErrors: unknown[] = [];
    const restoredEvents: Array<[string, StoredCheckpoint]> = [];
    const pool = newPool({
      initialState: new Map([['a', checkpoint]]),
      onRestoreError: (e) => restoreErrors.push(e),
      onRestored: (stream, c) => restoredEvents.push([stream, c]),
    });
    assert.equal(pool.hasOffer('a'), true);
    const restored = pool.get('a');
    assert.equal(pool.hasOffer('a'), false);
    assert.deepEqual(restoredEvents, [['a', checkpoint]]);
    assert.ok(restoredEvents[0][1] === checkpoint);
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
    assert.equal(restoredEvents.length, 1);
  });

  /** Checkpoints that cannot be restored, and the stream they were offered for. */
  function badCheckpoints(): Map<string, StoredCheckpoint> {
    const foreign = createLearner(otherSpec);
    foreign.predict(xOf(0));
    const meta = (stream: string) => ({ stream, lastSeq: 0, version: 0, tick: 0, savedAt: 0 });
    const good = referenceAfter(3, { learnLast: true }).snapshot();
    return new Map<string, StoredCheckpoint>([
      ['other-spec', { meta: meta('other-spec'), snapshot: foreign.snapshot() }],
      ['garbage', { meta: meta('garbage'), snapshot: Uint8Array.from([1, 2, 3]) }],
      ['truncated', { meta: meta('truncated'), snapshot: good.subarray(0, 100) }],
      ['null', null as unknown as StoredCheckpoint],
      // A sound snapshot with a part this pool does not keep, and one with a part whose bytes do not check.
      ['unknown-part', { meta: meta('unknown-part'), snapshot: good, parts: new Map([['nobody', Uint8Array.from([0x5a])]]) }],
      ['bad-part', { meta: meta('bad-part'), snapshot: good, parts: new Map([['test-part', Uint8Array.from([0x00])]]) }],
    ]);
  }
  const badKeys = ['other-spec', 'garbage', 'truncated', 'null', 'unknown-part', 'bad-part'];

  test("a checkpoint that does not restore goes to onRestoreError; under 'refuse' (the default) the stream is refused for good", () => {
    const state = badCheckpoints();
    const errors: Array<[Error, string, StoredCheckpoint]> = [];
    const pool = newPool({ initialState: state, onRestoreError: (e, stream, c) => errors.push([e, stream, c]) });
    assert.equal(pool.onBadCheckpoint, 'refuse');
    const { part, checked } = testPart();
    pool.registerPart(part);
    for (const key of badKeys) {
      assert.throws(() => pool.get(key), (e) => e instanceof StreamUnavailableError && e.key === key && e.retriable === false, key);
    }
    assert.deepEqual(errors.map(([, s]) => s), badKeys);
    for (const [, stream, c] of errors) assert.ok(c === state.get(stream), `the checkpoint of ${stream} is reported`);
    assert.ok(errors.slice(0, 3).every(([e]) => e instanceof SnapshotError));
    assert.ok(errors[3][0] instanceof Error);
    assert.match(errors[4][0].message, /'nobody'/);
    assert.equal(errors[5][0].message, 'test-part: bytes that do not restore');
    assert.equal(checked.length, 1);
    assert.deepEqual(checked[0].bytes, Uint8Array.from([0x00]));
    // Sticky: every later call is refused with the same error, without another report or another restore attempt.
    for (const key of badKeys) {
      let first: unknown;
      try {
        pool.get(key);
      } catch (e) {
        first = e;
      }
      assert.ok(first instanceof StreamUnavailableError, key);
      assert.ok(first.restoreError === errors[badKeys.indexOf(key)][0], key);
      assert.match(first.message, new RegExp(`stream '${key}' refused`));
      assert.throws(() => pool.get(key), (e) => e === first, key);
      assert.equal(pool.isRefused(key), true);
      assert.equal(pool.has(key), false);
      assert.equal(pool.hasOffer(key), false);
    }
    assert.equal(errors.length, badKeys.length);
    assert.equal(checked.length, 1);
    assert.equal(pool.size, 0);
    // Other streams are served; a refusal forgotten lets the stream start fresh (the offer was used).
    assert.deepEqual(pool.get('fine').snapshot(), createLearner(spec).snapshot());
    assert.equal(pool.forgetRefusal('garbage'), true);
    assert.equal(pool.forgetRefusal('garbage'), false);
    assert.deepEqual(pool.get('garbage').snapshot(), createLearner(spec).snapshot());
    assert.equal(errors.length, badKeys.length);
    assert.equal(pool.size, 2);
  });

  test("under 'fresh' a checkpoint that does not restore goes to onRestoreError and the learner starts fresh", () => {
    const state = badCheckpoints();
    const errors: Array<[Error, string, StoredCheckpoint]> = [];
    const restoredEvents: string[] = [];
    const pool = newPool({
      initialState: state, onBadCheckpoint: 'fresh', onRestoreError: (e, stream, c) => errors.push([e, stream, c]),
      onRestored: (stream) => restoredEvents.push(stream),
    });
    assert.equal(pool.onBadCheckpoint, 'fresh');
    pool.registerPart(testPart().part);
    const fresh = createLearner(spec).snapshot();
    const learners = new Map<string, Learner>();
    for (const key of badKeys) {
      const learner = pool.get(key);
      learners.set(key, learner);
      assert.deepEqual(learner.snapshot(), fresh, key);
      assert.equal(learner.version, 0, key);
      assert.equal(learner.tick, -1, key);
    }
    assert.deepEqual(errors.map(([, s]) => s), badKeys);
    for (const [, stream, c] of errors) assert.ok(c === state.get(stream), `the checkpoint of ${stream} is reported`);
    assert.ok(errors.slice(0, 3).every(([e]) => e instanceof SnapshotError));
    assert.ok(errors[3][0] instanceof Error);
    assert.equal(errors[5][0].message, 'test-part: bytes that do not restore');
    assert.deepEqual(restoredEvents, []);
    // A fresh stream gets no part bytes of the checkpoint it could not use; later calls return the same learner.
    for (const key of badKeys) {
      assert.equal(pool.takeRestoredPart(key, 'test-part'), undefined, key);
      assert.ok(pool.get(key) === learners.get(key), key);
      assert.equal(pool.isRefused(key), false, key);
    }
    assert.equal(errors.length, badKeys.length);
    assert.equal(pool.size, badKeys.length);
  });

  test('each checkpoint is used once per pool; default report is a warning; a throwing callback propagates', async () => {
    const saved = referenceAfter(5, { learnLast: true }).snapshot();
    const state = new Map([['a', { meta: { stream: 'a', lastSeq: 4, version: 5, tick: 4, savedAt: 0 }, snapshot: saved }]]);
    const pool = newPool({ initialState: state });
    assert.deepEqual(pool.get('a').snapshot(), saved);
    pool.delete('a');
    assert.deepEqual(pool.get('a').snapshot(), createLearner(spec).snapshot());

    const badState = new Map([['a', { ...state.get('a')!, snapshot: Uint8Array.from([0]) }]]);
    const fresh = createLearner(spec).snapshot();
    for (const policy of ['refuse', 'fresh'] as const) {
      const warnings = await warningsDuring(() => {
        const p = newPool({ initialState: badState, onBadCheckpoint: policy });
        if (policy === 'refuse') assert.throws(() => p.get('a'), StreamUnavailableError);
        else assert.deepEqual(p.get('a').snapshot(), fresh);
      });
      assert.equal(warnings.length, 1, policy);
      assert.match(warnings[0], /stream 'a': its checkpoint could not be restored \(.+\)/, policy);
    }

    const boom = new Error('callback failed');
    // 'refuse': the refusal is in place before the callback runs, so it stays after the callback threw.
    const refusing = newPool({ initialState: badState, onRestoreError: () => { throw boom; } });
    assert.throws(() => refusing.get('a'), (e) => e === boom);
    assert.equal(refusing.has('a'), false);
    assert.throws(() => refusing.get('a'), StreamUnavailableError);
    // 'fresh': the throw leaves no learner behind; the offer is used, so the next call starts fresh without a report.
    let calls = 0;
    const freshPool = newPool({ initialState: badState, onBadCheckpoint: 'fresh', onRestoreError: () => { calls++; throw boom; } });
    assert.throws(() => freshPool.get('a'), (e) => e === boom);
    assert.equal(freshPool.has('a'), false);
    assert.deepEqual(freshPool.get('a').snapshot(), fresh);
    assert.equal(calls, 1);

    assert.throws(() => newPool({ initialState: [] as never }), TypeError);
    assert.throws(() => newPool({ onRestoreError: 'no' as never }), TypeError);
    assert.throws(() => newPool({ onRestored: 'no' as never }), TypeError);
    assert.throws(() => newPool({ onBadCheckpoint: 'ignore' as never }), RangeError);
  });
});

describe('LearnerPool offers, state parts and eviction', () => {
  test('offer(): the next learner of the stream resumes from it, once; a newer offer replaces an unused one', () => {
    const pool = newPool();
    const live = pool.get('a');
    const older = referenceAfter(3, { learnLast: true }).snapshot();
    const newer = referenceAfter(6, { learnLast: true }).snapshot();
    const checkpointOfA = (snapshot: Uint8Array): StoredCheckpoint => ({ meta: { stream: 'a', lastSeq: 0, version: 0, tick: 0, savedAt: 0 }, snapshot });
    pool.offer(checkpointOfA(older));
    pool.offer(checkpointOfA(newer));
    assert.equal(pool.hasOffer('a'), true);
    assert.equal(pool.hasOffer('b'), false);
    // A live learner is not touched: the offer waits for the stream's next learner.
    assert.ok(pool.get('a') === live);
    assert.equal(pool.hasOffer('a'), true);
    assert.equal(pool.evict('a'), true);
    const resumed = pool.get('a');
    assert.ok(resumed !== live);
    assert.deepEqual(resumed.snapshot(), newer);
    assert.equal(pool.hasOffer('a'), false);
    pool.evict('a');
    assert.deepEqual(pool.get('a').snapshot(), createLearner(spec).snapshot());
  });

  test('snapshotStream and takeRestoredPart: a stream with its parts round-trips through a checkpoint', () => {
    const pool = newPool();
    const first = testPart('first');
    const silent = testPart('silent'); // holds nothing for the stream: absent from the parts
    pool.registerPart(first.part);
    pool.registerPart(silent.part);
    assert.throws(() => pool.registerPart(testPart('first').part), /already registered/);
    assert.ok(pool.part('first') === first.part);
    assert.equal(pool.snapshotStream('a'), undefined);
    const learner = pool.get('a');
    learner.predict(xOf(0));
    learner.learn(yOf(0));
    first.state.set('a', Uint8Array.from([0x5a, 1, 2, 3]));
    const taken = pool.snapshotStream('a')!;
    assert.deepEqual(taken.snapshot, learner.snapshot());
    assert.deepEqual(taken.parts, new Map([['first', Uint8Array.from([0x5a, 1, 2, 3])]]));
    assert.equal(pool.snapshotStream('b'), undefined);

    const restoredEvents: string[] = [];
    const other = newPool({ onRestored: (s) => restoredEvents.push(s), onRestoreError: (e) => assert.fail(e) });
    const partsOfOther = testPart('first');
    other.registerPart(partsOfOther.part);
    other.registerPart(testPart('silent').part);
    other.offer({ meta: { stream: 'a', lastSeq: 0, version: 1, tick: 0, savedAt: 0 }, ...taken });
    assert.equal(other.takeRestoredPart('a', 'first'), undefined, 'nothing before the learner is created');
    const restored = other.get('a');
    assert.deepEqual(restored.snapshot(), learner.snapshot());
    assert.deepEqual(restoredEvents, ['a']);
    // The part checked its bytes against the stream's new learner before the restore was accepted.
    assert.equal(partsOfOther.checked.length, 1);
    assert.ok(partsOfOther.checked[0].learner === restored);
    assert.equal(other.takeRestoredPart('a', 'silent'), undefined);
    assert.deepEqual(other.takeRestoredPart('a', 'first'), Uint8Array.from([0x5a, 1, 2, 3]));
    assert.equal(other.takeRestoredPart('a', 'first'), undefined, 'taken once');
    assert.equal(other.takeRestoredPart('b', 'first'), undefined);
    // An unregistered part is no longer saved.
    const unregister = other.registerPart(testPart('late').part);
    unregister();
    assert.equal(other.part('late'), undefined);
  });

  test("evict(): drops the learner, every registered part's state and calls every onEvict listener", () => {
    const pool = newPool();
    const one = testPart('one');
    const two = testPart('two');
    pool.registerPart(one.part);
    pool.registerPart(two.part);
    const heard: string[] = [];
    const alsoHeard: string[] = [];
    const unheard: string[] = [];
    pool.onEvict((s) => heard.push(s));
    pool.onEvict((s) => alsoHeard.push(s));
    pool.onEvict((s) => unheard.push(s))();
    const a = pool.get('a');
    pool.get('b');
    one.state.set('a', Uint8Array.from([0x5a]));
    two.state.set('a', Uint8Array.from([0x5a, 9]));
    assert.equal(pool.evict('a'), true);
    assert.equal(pool.has('a'), false);
    assert.equal(pool.peek('a'), undefined);
    assert.equal(pool.size, 1);
    assert.deepEqual([one.dropped, two.dropped, heard, alsoHeard, unheard], [['a'], ['a'], ['a'], ['a'], []]);
    assert.equal(one.state.has('a'), false);
    assert.equal(two.state.has('a'), false);
    assert.equal(pool.snapshotStream('a'), undefined);
    // Not live: nothing to drop, nobody told.
    assert.equal(pool.evict('a'), false);
    assert.equal(pool.evict('never'), false);
    assert.deepEqual([one.dropped, heard], [['a'], ['a']]);
    // The next learner of the stream is a new, fresh one.
    const again = pool.get('a');
    assert.ok(again !== a);
    assert.deepEqual(again.snapshot(), createLearner(spec).snapshot());
    // delete and clear evict too.
    pool.delete('b');
    pool.clear();
    assert.deepEqual(one.dropped, ['a', 'b', 'a']);
    assert.deepEqual(heard, ['a', 'b', 'a']);
    assert.equal(pool.size, 0);
    // Part bytes of a restored stream not taken yet go with an eviction.
    pool.offer({ meta: { stream: 'r', lastSeq: 0, version: 0, tick: -1, savedAt: 0 }, snapshot: createLearner(spec).snapshot(), parts: new Map([['one', Uint8Array.from([0x5a])]]) });
    pool.get('r');
    pool.evict('r');
    assert.equal(pool.takeRestoredPart('r', 'one'), undefined);
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

  test('values pass through unchanged and in order; settle() snapshots the streams that came due', async () => {
    const { checkpointer, store, pool } = setup(2);
    const report = { kind: 'prequential', stream: 'a', seq: 1 } as unknown as PrequentialReport;
    const refused: Rejection = { kind: 'rejected', reason: 'malformed', message: 'bad' };
    const v: Record<string, PrequentialInput> = {
      a: prediction(0), b: prediction(1), r: report, x: refused, z: prediction(0, 'zz'), c: prediction(2), d: prediction(3),
    };
    scheduler().run(({ cold, expectObservable }) => {
      expectObservable(cold('a-b-r-x-z-c-d|', v).pipe(settlingEach(checkpointer))).toBe('a-b-r-x-z-c-d|', v);
    });
    await settle();
    const recorded = (store as unknown as RecordingStore).saved;
    // Stream 'zz' has no learner in the pool: never snapshotted. Stream 'a': at its 2nd and 4th predictions.
    assert.deepEqual(recorded.map((c) => [c.meta.stream, c.meta.lastSeq]), [['a', 1], ['a', 3]]);
    const learner = pool.get('a');
    assert.deepEqual({ ...recorded[0].meta, savedAt: 0 }, { stream: 'a', lastSeq: 1, version: learner.version, tick: learner.tick, savedAt: 0, pendingLabels: [] });
    assert.deepEqual(recorded[0].snapshot, learner.snapshot());
    // No part is registered with this pool: the checkpoint holds none.
    assert.deepEqual(recorded[0].parts, new Map());
    assert.equal(checkpointer.stats.saved, 2);

    // The operator alone only notes predictions: nothing is snapshotted until settle(), which takes one
    // snapshot of a stream however many of its predictions passed since it came due.
    const inputs = [v.a, v.b, v.r, v.x, v.z, v.c, v.d];
    const seen: PrequentialInput[] = [];
    const unsettled = setup(2);
    from(inputs).pipe(unsettled.checkpointer.operator).subscribe((m) => seen.push(m));
    assert.equal(seen.length, inputs.length);
    assert.ok(seen.every((m, i) => m === inputs[i]), 'the same message objects');
    await settle();
    const unsettledSaved = (unsettled.store as unknown as RecordingStore).saved;
    assert.equal(unsettledSaved.length, 0);
    assert.equal(unsettled.checkpointer.writesInFlight, 0);
    unsettled.checkpointer.settle();
    await settle();
    assert.deepEqual(unsettledSaved.map((c) => [c.meta.stream, c.meta.lastSeq]), [['a', 3]]);
    unsettled.checkpointer.settle();
    await settle();
    assert.equal(unsettledSaved.length, 1, 'nothing is due any more');
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
    const throwing = saveOnlyStore(() => { throw boom; });
    const { checkpointer } = setup(1, throwing, (e, s) => errors.push([e, s]));
    scheduler().run(({ cold, expectObservable }) => {
      const v = { a: prediction(0), b: prediction(1) };
      expectObservable(cold('a-b|', v).pipe(settlingEach(checkpointer))).toBe('a-b|', v);
    });
    await settle();
    assert.deepEqual(errors, [[boom, 'a'], [boom, 'a']]);
    assert.deepEqual({ ...checkpointer.stats }, { saved: 0, failed: 2, coalesced: 0 });
    assert.equal(checkpointer.writesInFlight, 0);
  });

  test('a learner that throws while snapshotting throws from settle(); a pool that throws in the operator is an error notification', () => {
    const { checkpointer, pool, store } = setup(1);
    const boom = new Error('snapshot failed');
    pool.get('a').snapshot = () => { throw boom; };
    // The snapshot is no longer taken while the prediction passes: the operator is not concerned.
    scheduler().run(({ cold, expectObservable }) => {
      expectObservable(cold('a-b', { a: prediction(0), b: prediction(1) }).pipe(checkpointer.operator)).toBe('a-b', { a: prediction(0), b: prediction(1) });
    });
    // The programming error surfaces where the snapshot is taken.
    assert.throws(() => checkpointer.settle(), (e) => e === boom);
    assert.equal(checkpointer.writesInFlight, 0);
    assert.deepEqual((store as unknown as RecordingStore).saved, []);

    const broken = setup(1);
    const poolBoom = new Error('pool failed');
    broken.pool.has = () => { throw poolBoom; };
    scheduler().run(({ cold, expectObservable }) => {
      expectObservable(cold('a-b', { a: prediction(0), b: prediction(1) }).pipe(broken.checkpointer.operator)).toBe('#', undefined, poolBoom);
    });
  });

  test('configuration errors throw at creation', () => {
    const pool = newPool();
    const store = new RecordingStore();
    assert.throws(() => createCheckpointer({ pool, store, everyTicks: 0 }), RangeError);
    assert.throws(() => createCheckpointer({ pool, store, everyTicks: 1.5 }), RangeError);
    assert.throws(() => createCheckpointer({ pool, store, everySeconds: 0 }), RangeError);
    assert.throws(() => createCheckpointer({ pool, store, everySeconds: -1 }), RangeError);
    assert.throws(() => createCheckpointer({ pool, store, everySeconds: NaN }), RangeError);
    assert.throws(() => createCheckpointer({ pool: {} as LearnerPool, store, everyTicks: 1 }), TypeError);
    assert.throws(() => createCheckpointer({ pool, store: {} as CheckpointStore, everyTicks: 1 }), TypeError);
    for (const name of ['onError', 'onSaved', 'marks', 'now'] as const) {
      assert.throws(() => createCheckpointer({ pool, store, everyTicks: 1, [name]: 'x' as never }), TypeError, name);
    }
    assert.throws(() => createCheckpointer(undefined as never), TypeError);
    // everyTicks is optional: a time bound alone is a valid configuration.
    assert.doesNotThrow(() => createCheckpointer({ pool, store }));
    assert.doesNotThrow(() => createCheckpointer({ pool, store, everySeconds: 0.5 }));
  });
});

describe('createCheckpointer with predictThenLearn', () => {
  type Extra = Omit<CheckpointerOptions, 'pool' | 'store' | 'marks'>;
  /**
   * predictThenLearn -> checkpointer over a subject, wired as the pipeline wires them: the checkpointer reads
   * predictThenLearn's marks, and `input.next` settles the checkpointer once the input has gone through the whole
   * chain. The subscription stays open so the pool keeps its learners.
   */
  function pipeline(pool: LearnerPool, store: CheckpointStore, extra: Extra) {
    const marks = (stream: string) => (pool.part(PREDICT_THEN_LEARN_PART) as PredictThenLearnPart | undefined)?.marks(stream);
    const checkpointer = createCheckpointer({ pool, store, marks, ...extra });
    const subject = new Subject<StreamInput>();
    const out: PrequentialInput[] = [];
    let error: unknown;
    subject.pipe(predictThenLearn({ pool: () => pool, recoveryTicks: 0, maxDelay: 8 }), checkpointer.operator)
      .subscribe({ next: (m) => out.push(m), error: (e) => (error = e) });
    const input = {
      next(m: StreamInput) {
        subject.next(m);
        checkpointer.settle();
      },
    };
    return { checkpointer, input, out, errorOf: () => error };
  }
  const metaOf = (c: StoredCheckpoint) => ({ ...c.meta, savedAt: 0 });
  const seqsOf = (calls: GatedStore['calls']) => calls.map((c) => [c.checkpoint.meta.stream, c.checkpoint.meta.lastSeq]);

  test('the meta, bytes and parts of each snapshot are those of the stream once the frame of lastSeq is applied', async () => {
    const store = new RecordingStore();
    const { input } = pipeline(newPool(), store, { everyTicks: 4 });
    for (let i = 0; i < 10; i++) input.next(tick(i, { y: true }));
    await settle();
    // Due at the prediction of tick k, taken after the frame: the learner has predicted 0..k and learned 0..k.
    assert.deepEqual(store.saved.map(metaOf), [
      { stream: 'a', lastSeq: 3, version: 4, tick: 3, savedAt: 0, pendingLabels: [] },
      { stream: 'a', lastSeq: 7, version: 8, tick: 7, savedAt: 0, pendingLabels: [] },
    ]);
    assert.deepEqual(store.saved[0].snapshot, referenceAfter(4, { learnLast: true }).snapshot());
    assert.deepEqual(store.saved[1].snapshot, referenceAfter(8, { learnLast: true }).snapshot());
    assert.ok(store.saved.every((c) => Math.abs(c.meta.savedAt - Date.now()) < 60_000));
    // predictThenLearn's per-stream state travels with the snapshot, and it moved on between the two.
    for (const c of store.saved) assert.deepEqual([...c.parts!.keys()], [PREDICT_THEN_LEARN_PART]);
    assert.ok(store.saved[0].parts!.get(PREDICT_THEN_LEARN_PART)!.length > 0);
    assert.notDeepEqual(store.saved[0].parts!.get(PREDICT_THEN_LEARN_PART), store.saved[1].parts!.get(PREDICT_THEN_LEARN_PART));
  });

  test('with late labels the version counts the labels arrived up to the tick, and pendingLabels lists the unlabelled ticks', async () => {
    const store = new RecordingStore();
    const { input } = pipeline(newPool(), store, { everyTicks: 3 });
    // Each label comes two ticks late: tick i, then the label of tick i - 2.
    for (let i = 0; i < 9; i++) {
      input.next(tick(i));
      if (i >= 2) input.next(label(i - 2));
      await settle(); // no write is still in flight when the next is due
    }
    // Snapshots after ticks 2, 5, 8 (before the label of k - 2 arrives): labels 0..k-3 learned, k-2..k pending.
    assert.deepEqual(store.saved.map((c) => [c.meta.lastSeq, c.meta.version, c.meta.tick]), [[2, 0, 2], [5, 3, 5], [8, 6, 8]]);
    assert.deepEqual(store.saved.map((c) => c.meta.pendingLabels), [[0, 1, 2], [3, 4, 5], [6, 7, 8]]);
  });

  test('round trip through files: restored learners and their parts match the saved bytes and predict like the originals', async () => {
    const dir = freshDir();
    const pool = newPool();
    const original = pipeline(pool, new FileCheckpointStore(dir), { everyTicks: 4 });
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
    // Every label arrived: nothing pending, whether the store keeps an empty list or none.
    const metaOfKey = (key: string) => ({ ...loaded.get(key)!.meta, savedAt: 0, pendingLabels: loaded.get(key)!.meta.pendingLabels ?? [] });
    assert.deepEqual(metaOfKey('a'), { stream: 'a', lastSeq: 9, version: 10, tick: 9, savedAt: 0, pendingLabels: [] });
    assert.deepEqual(metaOfKey('../b'), { stream: '../b', lastSeq: 10, version: 11, tick: 10, savedAt: 0, pendingLabels: [] });
    for (const key of ['a', '../b']) {
      assert.deepEqual(loaded.get(key)!.snapshot, pool.get(key).snapshot(), key);
      assert.deepEqual(loaded.get(key)!.parts, pool.snapshotStream(key)!.parts, key);
      assert.ok(loaded.get(key)!.parts!.has(PREDICT_THEN_LEARN_PART), key);
    }

    const restoredPool = newPool({ initialState: loaded, onRestoreError: (e) => assert.fail(e) });
    const restored = pipeline(restoredPool, new RecordingStore(), { everyTicks: 1000 });
    for (const key of ['a', '../b']) assert.deepEqual(restoredPool.get(key).snapshot(), loaded.get(key)!.snapshot, key);

    // Both go on with the same ticks and labels; a tick at or below lastSeq is a duplicate to the restored stream.
    const continuation: StreamInput[] = [];
    for (let i = 10; i < 16; i++) continuation.push(tick(i, { y: true }), tick(i + 1, { y: true, stream: '../b' }));
    const predictionsOf = (feed: { input: { next(m: StreamInput): void }; out: PrequentialInput[] }) => {
      const start = feed.out.length;
      for (const m of continuation) feed.input.next(m);
      return feed.out.slice(start).filter((m): m is Prediction => m.kind === 'prediction').map((p) => [p.stream, p.seq, p.version, Array.from(p.yhat)]);
    };
    const fromOriginal = predictionsOf(original);
    const fromRestored = predictionsOf(restored);
    assert.equal(fromOriginal.length, 12);
    assert.deepEqual(fromRestored, fromOriginal);
    assert.deepEqual(restoredPool.get('a').snapshot(), pool.get('a').snapshot());
    assert.deepEqual(restoredPool.snapshotStream('../b')!.parts, pool.snapshotStream('../b')!.parts);
    const start = restored.out.length;
    restored.input.next(tick(9, { y: true }));
    assert.deepEqual(restored.out.slice(start).map((m) => [m.kind, (m as Rejection).reason]), [['rejected', 'duplicate']]);
  });

  test('coalescing under a slow store: one write in flight per stream, the newest waiting one wins; unconfirmed and onSaved', async () => {
    const store = new GatedStore();
    const confirmed: StoredCheckpoint[] = [];
    const { checkpointer, input } = pipeline(newPool(), store, { everyTicks: 1, onSaved: (c) => confirmed.push(c) });
    assert.equal(checkpointer.unconfirmed('a'), undefined);
    input.next(tick(0, { y: true }));
    await settle();
    assert.equal(store.open().length, 1);
    assert.ok(checkpointer.unconfirmed('a') === store.calls[0].checkpoint);
    for (let i = 1; i <= 3; i++) input.next(tick(i, { y: true })); // 1 waits, 2 replaces it, 3 replaces 2
    // A restore must prefer the newest checkpoint handed over, even though it is only waiting.
    assert.equal(checkpointer.unconfirmed('a')!.meta.lastSeq, 3);
    input.next(tick(0, { y: true, stream: 'b' })); // another stream writes alongside
    await settle();
    assert.deepEqual(seqsOf(store.open()), [['a', 0], ['b', 0]]);
    assert.equal(checkpointer.stats.coalesced, 2);
    assert.ok(checkpointer.unconfirmed('b') === store.open()[1].checkpoint);
    assert.equal(confirmed.length, 0);
    store.calls[0].release();
    await settle();
    assert.deepEqual(seqsOf(store.open()), [['b', 0], ['a', 3]]);
    const newest = store.open()[1].checkpoint;
    assert.ok(checkpointer.unconfirmed('a') === newest);
    assert.deepEqual(metaOf(newest), { stream: 'a', lastSeq: 3, version: 4, tick: 3, savedAt: 0, pendingLabels: [] });
    assert.deepEqual(newest.snapshot, referenceAfter(4, { learnLast: true }).snapshot());
    assert.deepEqual(confirmed, [store.calls[0].checkpoint]);
    assert.ok(confirmed[0] === store.calls[0].checkpoint);
    for (const c of store.open()) c.release();
    await settle();
    assert.deepEqual({ ...checkpointer.stats }, { saved: 3, failed: 0, coalesced: 2 });
    assert.equal(store.maxInFlightPerStream, 1);
    assert.equal(store.maxInFlightTotal, 2);
    assert.equal(checkpointer.unconfirmed('a'), undefined);
    assert.equal(checkpointer.unconfirmed('b'), undefined);
    assert.equal(checkpointer.writesInFlight, 0);
    assert.deepEqual(confirmed.map((c) => [c.meta.stream, c.meta.lastSeq]), [['a', 0], ['b', 0], ['a', 3]]);
    // Idle again: the next snapshot goes straight to the store.
    input.next(tick(4, { y: true }));
    await settle();
    assert.deepEqual(store.open().map((c) => c.checkpoint.meta.lastSeq), [4]);
  });

  test('failed writes are counted and reported, never confirmed; the stream and the other streams go on', async () => {
    const errors: Array<[string, string]> = [];
    const confirmed: string[] = [];
    const failing = saveOnlyStore(async (c) => {
      if (c.meta.stream === 'b') throw new Error(`no room for ${c.meta.lastSeq}`);
    });
    const { checkpointer, input, out, errorOf } = pipeline(newPool(), failing, {
      everyTicks: 2, onError: (e, s) => errors.push([s, e.message]), onSaved: (c) => confirmed.push(`${c.meta.stream}@${c.meta.lastSeq}`),
    });
    for (let i = 0; i < 6; i++) {
      input.next(tick(i, { y: true }));
      input.next(tick(i, { y: true, stream: 'b' }));
      await settle(); // each write finishes before the next is due: nothing coalesces
    }
    assert.deepEqual(errors, [['b', 'no room for 1'], ['b', 'no room for 3'], ['b', 'no room for 5']]);
    assert.deepEqual(confirmed, ['a@1', 'a@3', 'a@5']);
    assert.deepEqual({ ...checkpointer.stats }, { saved: 3, failed: 3, coalesced: 0 });
    assert.equal(checkpointer.unconfirmed('b'), undefined);
    assert.equal(errorOf(), undefined);
    assert.equal(out.filter((m) => m.kind === 'prediction').length, 12);
    assert.equal(out.filter((m) => m.kind === 'scored').length, 12);
  });

  test('throwing onError and onSaved callbacks and the default onError end in process warnings, never a crash', async () => {
    const failing = saveOnlyStore(() => Promise.reject(new Error('read-only file system')));
    let savedAnyway = 0;
    const warnings = await warningsDuring(async () => {
      const throwing = pipeline(newPool(), failing, { everyTicks: 1, onError: () => { throw new Error('handler bug'); } });
      throwing.input.next(tick(0));
      const silent = pipeline(newPool(), failing, { everyTicks: 1 });
      silent.input.next(tick(0));
      const savedThrows = pipeline(newPool(), new RecordingStore(), { everyTicks: 1, onSaved: () => { throw new Error('listener bug'); } });
      savedThrows.input.next(tick(0));
      await settle();
      assert.equal(throwing.checkpointer.stats.failed, 1);
      assert.equal(silent.checkpointer.stats.failed, 1);
      savedAnyway = savedThrows.checkpointer.stats.saved;
      assert.equal(savedThrows.checkpointer.stats.failed, 0);
    });
    assert.equal(savedAnyway, 1);
    assert.equal(warnings.length, 3);
    assert.ok(warnings.some((w) => /onError callback threw: Error: handler bug/.test(w)));
    assert.ok(warnings.some((w) => /onSaved callback threw: Error: listener bug/.test(w)));
    assert.ok(warnings.some((w) => /checkpoint of stream 'a' not written: read-only file system/.test(w)));
  });

  test('flush snapshots every learner now and resolves only when every write, in flight and waiting, is done', async () => {
    const store = new GatedStore();
    const pool = newPool();
    const failures: string[] = [];
    const { checkpointer, input } = pipeline(pool, store, { everyTicks: 3, onError: (e, s) => failures.push(`${s}: ${e.message}`) });
    for (let i = 0; i < 3; i++) input.next(tick(i, { y: true })); // snapshot of a after tick 2, in flight
    input.next(tick(3)); // predicted, its label still to come
    input.next(tick(0, { stream: 'b' }));
    input.next(label(0, 'b')); // learned after b's last prediction
    pool.get('idle'); // a learner no prediction has passed for: nothing to say about its lastSeq
    await settle();
    assert.deepEqual(store.open().map((c) => metaOf(c.checkpoint)), [{ stream: 'a', lastSeq: 2, version: 3, tick: 2, savedAt: 0, pendingLabels: [] }]);
    assert.equal(checkpointer.writesInFlight, 1);

    let flushed = false;
    const flushing = checkpointer.flush().then(() => (flushed = true));
    // a: its flush snapshot waits behind the write in flight; b: written now.
    assert.equal(checkpointer.writesInFlight, 3);
    assert.deepEqual(metaOf(checkpointer.unconfirmed('a')!), { stream: 'a', lastSeq: 3, version: 3, tick: 3, savedAt: 0, pendingLabels: [3] });
    await settle();
    assert.deepEqual(store.open().map((c) => [c.checkpoint.meta.stream, c.checkpoint.meta.lastSeq, c.checkpoint.meta.version]), [['a', 2, 3], ['b', 0, 1]]);
    assert.deepEqual(store.open()[1].checkpoint.meta.pendingLabels, []);
    store.open()[1].release();
    await settle();
    assert.equal(flushed, false);
    assert.equal(checkpointer.writesInFlight, 2);
    store.open()[0].release(); // the first write of a; its flush snapshot starts now
    await settle();
    assert.equal(flushed, false);
    assert.equal(checkpointer.writesInFlight, 1);
    const flushOfA = store.open();
    assert.deepEqual(flushOfA.map((c) => [c.checkpoint.meta.stream, c.checkpoint.meta.lastSeq, c.checkpoint.meta.version]), [['a', 3, 3]]);
    assert.deepEqual(flushOfA[0].checkpoint.snapshot, referenceAfter(4, { learnLast: false }).snapshot());
    flushOfA[0].fail(new Error('gone')); // a failed write also finishes the flush
    await flushing;
    assert.equal(flushed, true);
    assert.equal(checkpointer.writesInFlight, 0);
    assert.deepEqual({ ...checkpointer.stats }, { saved: 2, failed: 1, coalesced: 0 });
    assert.deepEqual(failures, ['a: gone']);
    assert.ok(store.calls.every((c) => c.checkpoint.meta.stream !== 'idle'));
    // The flush snapshot counts as the stream's last one: the next is due everyTicks predictions later.
    input.next(label(3));
    for (let i = 4; i < 6; i++) input.next(tick(i, { y: true }));
    await settle();
    assert.equal(store.open().length, 0);
    input.next(tick(6, { y: true }));
    await settle();
    assert.deepEqual(store.open().map((c) => metaOf(c.checkpoint)), [{ stream: 'a', lastSeq: 6, version: 7, tick: 6, savedAt: 0, pendingLabels: [] }]);
    store.open()[0].release();
    // Nothing to do: resolves at once.
    await settle();
    await Promise.race([
      createCheckpointer({ pool: newPool(), store: new RecordingStore(), everyTicks: 1 }).flush(),
      new Promise((_, reject) => setTimeout(() => reject(new Error('flush of an empty pool hangs')), 1000)),
    ]);
  });

  test('everySeconds: a tick snapshots a stream whose last snapshot is that old; settleQuiet snapshots quiet streams', async () => {
    const store = new RecordingStore();
    let clock = 0;
    // No bound given: everyTicks is unbounded and everySeconds defaults to 5.
    const { checkpointer, input } = pipeline(newPool(), store, { now: () => clock });
    const saved = () => store.saved.map((c) => [c.meta.stream, c.meta.lastSeq, c.meta.version]);
    for (let i = 0; i < 50; i++) input.next(tick(i, { y: true })); // many ticks at one moment: no tick bound
    clock = 1000;
    input.next(tick(0, { y: true, stream: 'b' }));
    clock = 4999;
    input.next(tick(50, { y: true }));
    checkpointer.settleQuiet();
    await settle();
    assert.deepEqual(saved(), []);
    // 5 s after a's first prediction: its next tick is due, snapshotted once the frame is applied.
    clock = 5000;
    input.next(tick(51, { y: true }));
    await settle();
    assert.deepEqual(saved(), [['a', 51, 52]]);
    // b went quiet after one tick: settleQuiet snapshots it once its last snapshot (its first tick) is 5 s old.
    clock = 5999;
    checkpointer.settleQuiet();
    await settle();
    assert.equal(store.saved.length, 1);
    input.next(tick(52, { y: true })); // a: one prediction since its snapshot, 1 s ago
    clock = 6000;
    checkpointer.settleQuiet();
    await settle();
    assert.deepEqual(saved(), [['a', 51, 52], ['b', 0, 1]]);
    // a is quiet too now; nothing new for b, so b is left alone.
    clock = 10_000;
    checkpointer.settleQuiet();
    await settle();
    assert.deepEqual(saved(), [['a', 51, 52], ['b', 0, 1], ['a', 52, 53]]);
    clock = 1e9;
    checkpointer.settleQuiet();
    await settle();
    assert.equal(store.saved.length, 3, 'no prediction since the last snapshots: nothing to write');

    // With everyTicks alone there is no time bound, on ticks or in settleQuiet.
    const ticksOnly = new RecordingStore();
    let t = 0;
    const bounded = pipeline(newPool(), ticksOnly, { everyTicks: 100, now: () => t });
    bounded.input.next(tick(0, { y: true }));
    t = 1e12;
    bounded.input.next(tick(1, { y: true }));
    bounded.checkpointer.settleQuiet();
    await settle();
    assert.deepEqual(ticksOnly.saved, []);
    // Both bounds: whichever comes first.
    const both = new RecordingStore();
    let u = 0;
    const either = pipeline(newPool(), both, { everyTicks: 3, everySeconds: 2, now: () => u });
    for (let i = 0; i < 3; i++) either.input.next(tick(i, { y: true }));
    u = 2000;
    either.input.next(tick(3, { y: true }));
    await settle();
    assert.deepEqual(both.saved.map((c) => c.meta.lastSeq), [2, 3]);
  });

  test('checkpointNow snapshots a stream at once and resolves when its write has finished, failed or not', async () => {
    const store = new GatedStore();
    const pool = newPool();
    const { checkpointer, input } = pipeline(pool, store, { everyTicks: 1000 });
    for (let i = 0; i < 3; i++) input.next(tick(i, { y: true }));
    input.next(tick(0, { stream: 'b' }));
    pool.get('idle');
    await settle();
    assert.equal(store.calls.length, 0);
    let done = false;
    const writing = checkpointer.checkpointNow('a').then(() => (done = true));
    assert.equal(checkpointer.writesInFlight, 1);
    assert.equal(checkpointer.unconfirmed('a')!.meta.lastSeq, 2);
    await settle();
    assert.deepEqual(store.open().map((c) => metaOf(c.checkpoint)), [{ stream: 'a', lastSeq: 2, version: 3, tick: 2, savedAt: 0, pendingLabels: [] }]);
    assert.deepEqual(store.open()[0].checkpoint.snapshot, referenceAfter(3, { learnLast: true }).snapshot());
    assert.equal(done, false);
    store.open()[0].release();
    await writing;
    assert.equal(done, true);
    assert.equal(checkpointer.stats.saved, 1);
    // The snapshot is taken when called: evicting right after (the pipeline's order) still writes it.
    const before = pool.snapshotStream('b')!;
    const writingB = checkpointer.checkpointNow('b');
    pool.evict('b');
    await settle();
    assert.deepEqual(store.open()[0].checkpoint.snapshot, before.snapshot);
    assert.deepEqual(store.open()[0].checkpoint.parts, before.parts);
    assert.deepEqual(store.open()[0].checkpoint.meta.pendingLabels, [0]);
    store.open()[0].fail(new Error('full'));
    await writingB;
    assert.equal(checkpointer.stats.failed, 1);
    // Nothing to write: no prediction passed, or no learner: resolves at once, writes nothing.
    await checkpointer.checkpointNow('idle');
    await checkpointer.checkpointNow('never-seen');
    await checkpointer.checkpointNow('b');
    await settle();
    assert.equal(store.calls.length, 2);
    assert.equal(checkpointer.writesInFlight, 0);
  });
});
