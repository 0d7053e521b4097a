// Issue 14, the storage side: a checkpoint that cannot be read is quarantined, never overwritten (DESIGN section
// 7). FileCheckpointStore's list/load/quarantine, format 2 (parts, pendingLabels) beside readable format 1 files,
// the start-up check of the directory, pendingWrites, and `driftline checkpoint inspect` / `driftline --version`
// run as subprocesses. Decisions tested here: loadAll, list and load all move what they find damaged into
// <dir>/quarantine/ (load also rejects with a CheckpointDefectError); list judges a file by its header, meta and
// length only, so a damaged snapshot is found by load.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import zlib from 'node:zlib';
import { SnapshotError } from '../src/learners/errors.js';
import { canonicalJson, createLearner, type LearnerSpec } from '../src/learners/learner.js';
import { rmsprop } from '../src/learners/optim/transform.js';
import { readSnapshotHeader } from '../src/learners/snapshot-header.js';
import { CheckpointDefectError, MAX_PENDING_LABELS, type StoredCheckpoint } from '../src/streams/checkpoint-store.js';
import {
  CHECKPOINT_TEMP_PREFIX, checkpointFileName, encodeCheckpointFile, FileCheckpointStore, type CorruptCheckpoint,
} from '../src/streams/file-checkpoint-store.js';

const spec: LearnerSpec = {
  cell: { kind: 'tanh-rnn', hiddenSize: 8 }, credit: { rule: 'immediate', lambda: 0 }, optimizer: rmsprop(0.01),
  inputSize: 3, outputSize: 2, seed: 7, loss: 'mse',
};

const scratch = mkdtempSync(join(tmpdir(), 'driftline-quarantine-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = () => join(scratch, `d${++dirCount}`);

const checkpointOf = (stream: string, version: number, snapshot: Uint8Array = new Uint8Array(64).fill(version)): StoredCheckpoint => ({
  meta: { stream, lastSeq: version * 10, version, tick: version + 1, savedAt: 1_700_000_000_000 + version },
  snapshot,
});

function storeIn(dir: string) {
  const problems: CorruptCheckpoint[] = [];
  const store = new FileCheckpointStore(dir, { onCorrupt: (p) => problems.push(p) });
  return { store, problems, fileOf: (stream: string) => join(dir, checkpointFileName(stream)) };
}

const withCrc = (b: Buffer) => {
  b.writeUInt32LE(zlib.crc32(b.subarray(0, b.length - 4)), b.length - 4);
  return b;
};
/** Damage of each kind the store must quarantine, applied to a good file's bytes. */
const damage: Record<string, (b: Buffer) => Buffer> = {
  truncated: (b) => b.subarray(0, b.length - 9),
  'crc-mismatch': (b) => ((b[b.length - 12] ^= 0x40), b),
  'bad-magic': (b) => withCrc(Buffer.concat([Buffer.from('NOPE'), b.subarray(4)])),
  'unsupported-format': (b) => (b.writeUInt32LE(3, 4), withCrc(b)),
};

/** A format-1 file, as the previous release wrote it. */
function formatOneFile(checkpoint: StoredCheckpoint): Buffer {
  const { stream, lastSeq, version, tick, savedAt } = checkpoint.meta;
  const meta = Buffer.from(JSON.stringify({ stream, lastSeq, version, tick, savedAt }), 'utf8');
  const header = Buffer.alloc(12);
  header.write('DLCK', 0, 'latin1');
  header.writeUInt32LE(1, 4);
  header.writeUInt32LE(meta.length, 8);
  return withCrc(Buffer.concat([header, meta, checkpoint.snapshot, Buffer.alloc(4)]));
}

describe('quarantine of damaged files', () => {
  for (const [defect, edit] of Object.entries(damage)) {
    test(`loadAll moves a ${defect} file aside, reports its new path, and the next save leaves the copy alone`, async () => {
      const dir = freshDir();
      const { store, problems, fileOf } = storeIn(dir);
      await store.save(checkpointOf('a', 1));
      await store.save(checkpointOf('b', 1));
      const damaged = edit(readFileSync(fileOf('b')));
      writeFileSync(fileOf('b'), damaged);

      const loaded = await store.loadAll();
      assert.deepEqual([...loaded.keys()], ['a']);
      assert.equal(problems.length, 1);
      const [p] = problems;
      assert.equal(p.defect, defect);
      assert.equal(p.original, fileOf('b'));
      assert.equal(dirname(p.file), store.quarantineDir);
      assert.ok(p.message.includes(fileOf('b')), p.message);
      assert.match(basename(p.file), new RegExp(`^${checkpointFileName('b').replace('.', '\\.')}\\.\\d{8}T\\d{6}\\.\\d{3}Z\\.${defect}$`));
      assert.equal(existsSync(fileOf('b')), false);
      assert.deepEqual(readFileSync(p.file), damaged);

      await store.save(checkpointOf('b', 2));
      assert.deepEqual(readFileSync(p.file), damaged);
      assert.equal((await store.load('b'))!.meta.version, 2);
      assert.equal(problems.length, 1);
    });
  }

  for (const defect of ['truncated', 'bad-magic', 'unsupported-format'] as const) {
    test(`list moves a file whose header shows it ${defect} aside and reports it`, async () => {
      const dir = freshDir();
      const { store, problems, fileOf } = storeIn(dir);
      await store.save(checkpointOf('a', 1));
      await store.save(checkpointOf('b', 1));
      const damaged = damage[defect](readFileSync(fileOf('b')));
      writeFileSync(fileOf('b'), damaged);
      const metas = await store.list();
      assert.deepEqual([...metas.keys()], ['a']);
      assert.deepEqual(problems.map((p) => [p.defect, p.original]), [[defect, fileOf('b')]]);
      assert.deepEqual(readFileSync(problems[0].file), damaged);
      await store.save(checkpointOf('b', 2));
      assert.deepEqual(readFileSync(problems[0].file), damaged);
      assert.deepEqual([...(await store.list()).keys()].sort(), ['a', 'b']);
    });
  }

  for (const [defect, edit] of Object.entries(damage)) {
    test(`load of a ${defect} file: moved aside, then a CheckpointDefectError; the stream then has none`, async () => {
      const dir = freshDir();
      const { store, problems, fileOf } = storeIn(dir);
      await store.save(checkpointOf('s', 1));
      const damaged = edit(readFileSync(fileOf('s')));
      writeFileSync(fileOf('s'), damaged);
      const error = await store.load('s').then(
        () => assert.fail('load resolved'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof CheckpointDefectError);
      assert.equal(error.defect, defect);
      assert.equal(error.file, fileOf('s'));
      assert.equal(error.retriable, false);
      assert.ok(error.message.startsWith(fileOf('s')), error.message);
      assert.ok(error.quarantined !== undefined && error.message.includes(error.quarantined));
      assert.deepEqual(readFileSync(error.quarantined), damaged);
      // The rejection is the report: onCorrupt is for the calls that return many streams.
      assert.deepEqual(problems, []);
      assert.equal(await store.load('s'), undefined);
      await store.save(checkpointOf('s', 2));
      assert.equal((await store.load('s'))!.meta.version, 2);
      assert.deepEqual(readFileSync(error.quarantined), damaged);
    });
  }

  test('load: undefined for a stream without a checkpoint; a file holding another stream is misplaced', async () => {
    const dir = freshDir();
    const { store, fileOf } = storeIn(dir);
    assert.equal(await store.load('nothing'), undefined);
    await store.save(checkpointOf('x', 1));
    writeFileSync(fileOf('y'), readFileSync(fileOf('x')));
    await assert.rejects(store.load('y'), (e: unknown) => e instanceof CheckpointDefectError && e.defect === 'misplaced');
    assert.equal((await store.load('x'))!.meta.stream, 'x');
    await assert.rejects(store.load(5 as unknown as string), TypeError);
  });

  test('quarantine twice for the same stream keeps both files, each with a note; a stream without a file rejects', async () => {
    const dir = freshDir();
    const { store, fileOf } = storeIn(dir);
    await store.save(checkpointOf('s', 1));
    const first = await store.quarantine('s', 'foreign-spec', 'snapshot of a tanh-rnn with hiddenSize 5, the config says 8');
    assert.equal(existsSync(fileOf('s')), false);
    await store.save(checkpointOf('s', 2));
    const second = await store.quarantine('s', 'foreign-spec', 'again');
    assert.notEqual(first, second);
    assert.equal(dirname(first), join(dir, 'quarantine'));
    assert.match(basename(first), /^k-73\.ckpt\.\d{8}T\d{6}\.\d{3}Z\.foreign-spec$/);
    assert.match(basename(second), /^k-73\.ckpt\.\d{8}T\d{6}\.\d{3}Z\.foreign-spec(\.1)?$/);
    assert.deepEqual(readFileSync(first), Buffer.from(encodeCheckpointFile(checkpointOf('s', 1))));
    assert.deepEqual(readFileSync(second), Buffer.from(encodeCheckpointFile(checkpointOf('s', 2))));
    const note = readFileSync(`${first}.txt`, 'utf8');
    assert.match(note, /defect: foreign-spec/);
    assert.match(note, /hiddenSize 5/);
    assert.ok(note.includes(fileOf('s')));

    // Same millisecond, same defect: the later one takes a numbered name.
    const names = new Set<string>();
    for (let i = 0; i < 5; i++) {
      await store.save(checkpointOf('s', 3 + i));
      names.add(await store.quarantine('s', 'foreign-spec', `round ${i}`));
    }
    assert.equal(names.size, 5);
    assert.equal(readdirSync(store.quarantineDir).filter((n) => !n.endsWith('.txt')).length, 7);

    await assert.rejects(store.quarantine('s', 'foreign-spec', 'nothing there'), (e: NodeJS.ErrnoException) => {
      assert.equal(e.code, 'ENOENT');
      assert.ok(e.message.includes(fileOf('s')), e.message);
      return true;
    });
    await assert.rejects(store.quarantine('s', '', 'x'), TypeError);
    // A hostile defect cannot leave the quarantine directory.
    await store.save(checkpointOf('s', 9));
    const odd = await store.quarantine('s', '../../etc/passwd', 'x');
    assert.equal(dirname(odd), store.quarantineDir);
  });

  test('list removes temp files left by a killed writer, as loadAll does', async () => {
    const dir = freshDir();
    const { store, problems, fileOf } = storeIn(dir);
    await store.save(checkpointOf('a', 1));
    writeFileSync(join(dir, `${CHECKPOINT_TEMP_PREFIX}99999-3`), readFileSync(fileOf('a')).subarray(0, 30));
    assert.deepEqual([...(await store.list()).keys()], ['a']);
    assert.deepEqual(readdirSync(dir), [checkpointFileName('a')]);
    assert.deepEqual(problems, []);
  });

  test('a damaged file that cannot be moved aside makes loadAll reject, naming it, and stays where it was', async () => {
    const dir = freshDir();
    const { store, fileOf } = storeIn(dir);
    await store.save(checkpointOf('a', 1));
    const damaged = damage['crc-mismatch'](readFileSync(fileOf('a')));
    writeFileSync(fileOf('a'), damaged);
    writeFileSync(join(dir, 'quarantine'), 'a file where the quarantine directory should be');
    await assert.rejects(store.loadAll(), (e: Error) => {
      assert.ok(e.message.startsWith(`${fileOf('a')} is damaged (crc-mismatch: `), e.message);
      assert.match(e.message, /could not be moved to .*quarantine: ENOTDIR/);
      return true;
    });
    assert.deepEqual(readFileSync(fileOf('a')), damaged);
  });

  test('a save and a load of a damaged file at once: the damaged bytes go to quarantine, the new checkpoint stays', async () => {
    const dir = freshDir();
    const { store, fileOf } = storeIn(dir);
    await store.save(checkpointOf('s', 1));
    const damaged = damage['crc-mismatch'](readFileSync(fileOf('s')));
    writeFileSync(fileOf('s'), damaged);
    const loading = store.load('s');
    const saving = store.save(checkpointOf('s', 2));
    const error = await loading.catch((e: CheckpointDefectError) => e);
    await saving;
    assert.ok(error instanceof CheckpointDefectError);
    assert.deepEqual(readFileSync(error.quarantined!), damaged);
    assert.equal((await store.load('s'))!.meta.version, 2);
  });
});

describe('format 2: parts and pendingLabels; format 1 still read', () => {
  test('parts and pendingLabels round-trip through save, load, loadAll and list', async () => {
    const dir = freshDir();
    const { store } = storeIn(dir);
    const parts = new Map<string, Uint8Array>([
      ['predict-then-learn', Uint8Array.from({ length: 300 }, (_, i) => i & 0xff)],
      ['normalize-inputs', new Uint8Array(0)],
      ['ünïcødé', Uint8Array.from([1, 2, 3])],
    ]);
    const checkpoint: StoredCheckpoint = {
      meta: { ...checkpointOf('s', 4).meta, pendingLabels: [0, 38, 39, 2 ** 53 - 1] },
      snapshot: Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) & 0xff),
      parts,
    };
    await store.save(checkpoint);
    const loaded = await store.load('s');
    assert.deepEqual(loaded, checkpoint);
    assert.deepEqual([...loaded!.parts!.keys()], [...parts.keys()], 'part order kept');
    for (const bytes of loaded!.parts!.values()) assert.equal(Object.getPrototypeOf(bytes), Uint8Array.prototype);
    assert.deepEqual((await store.loadAll()).get('s'), checkpoint);
    assert.deepEqual((await store.list()).get('s'), checkpoint.meta);

    // No parts and no pendingLabels: neither key comes back.
    await store.save({ ...checkpointOf('t', 1), parts: new Map() });
    assert.deepEqual(await store.load('t'), checkpointOf('t', 1));
    assert.deepEqual((await store.list()).get('t'), checkpointOf('t', 1).meta);
  });

  test('invalid pendingLabels and parts are refused with a TypeError naming the file; nothing is written', async () => {
    const dir = freshDir();
    const { store, fileOf } = storeIn(dir);
    const bad = (meta: object, extra: object = {}) => ({ ...checkpointOf('s', 1), meta: { ...checkpointOf('s', 1).meta, ...meta }, ...extra }) as StoredCheckpoint;
    const cases: Array<[StoredCheckpoint, RegExp]> = [
      [bad({ pendingLabels: [-1] }), /pendingLabels must hold non-negative safe integers/],
      [bad({ pendingLabels: [1.5] }), /non-negative safe integers/],
      [bad({ pendingLabels: [2 ** 53] }), /non-negative safe integers/],
      [bad({ pendingLabels: ['3'] }), /non-negative safe integers/],
      [bad({ pendingLabels: 'x' }), /pendingLabels must be an array/],
      [bad({ pendingLabels: new Array(MAX_PENDING_LABELS + 1).fill(0) }), /at most 65536/],
      [bad({}, { parts: new Map([['', new Uint8Array(1)]]) }), /part names must be non-empty/],
      [bad({}, { parts: new Map([['x', [1, 2]]]) }), /part "x" must be a Uint8Array/],
      [bad({}, { parts: 5 }), /parts must be a Map/],
    ];
    for (const [checkpoint, pattern] of cases) {
      await assert.rejects(store.save(checkpoint), (e: Error) => {
        assert.ok(e instanceof TypeError, e.message);
        assert.match(e.message, pattern);
        assert.ok(e.message.startsWith(fileOf('s')), e.message);
        return true;
      });
    }
    // The most pending labels allowed are fine.
    await store.save(bad({ pendingLabels: new Array(MAX_PENDING_LABELS).fill(7) }));
    assert.equal((await store.load('s'))!.meta.pendingLabels!.length, MAX_PENDING_LABELS);
    assert.deepEqual(readdirSync(dir), [checkpointFileName('s')]);
  });

  test('format 1 files load, list and inspect as before, without parts; the next save writes format 2', async () => {
    const dir = freshDir();
    const { store, problems, fileOf } = storeIn(dir);
    const old = checkpointOf('legacy', 3, Uint8Array.from([5, 6, 7, 8, 9]));
    writeFileSync(fileOf('legacy'), formatOneFile(old));
    assert.deepEqual(await store.load('legacy'), old);
    assert.deepEqual((await store.loadAll()).get('legacy'), old);
    assert.deepEqual((await store.list()).get('legacy'), old.meta);
    assert.deepEqual(problems, []);
    await store.save(checkpointOf('legacy', 4));
    assert.equal(readFileSync(fileOf('legacy')).readUInt32LE(4), 2);
  });

  test('a format-2 file with a malformed parts section (CRC intact) is bad-meta', async () => {
    const dir = freshDir();
    const { store, fileOf } = storeIn(dir);
    await store.save({ ...checkpointOf('s', 1), parts: new Map([['p', Uint8Array.from([1, 2, 3])]]) });
    const bytes = readFileSync(fileOf('s'));
    // The part's length field (last 4 + 3 bytes before the CRC) claims more than the section holds.
    bytes.writeUInt32LE(99, bytes.length - 4 - 3 - 4);
    writeFileSync(fileOf('s'), withCrc(bytes));
    await assert.rejects(store.load('s'), (e: CheckpointDefectError) => e.defect === 'bad-meta' && /parts section/.test(e.message));
  });
});

describe('list reads headers only', () => {
  test('a file with a damaged snapshot tail: list returns its meta, load rejects with crc-mismatch', async () => {
    const dir = freshDir();
    const { store, problems, fileOf } = storeIn(dir);
    await store.save({ ...checkpointOf('s', 5, new Uint8Array(250 * 1024).fill(1)), meta: { ...checkpointOf('s', 5).meta, pendingLabels: [49] } });
    const bytes = readFileSync(fileOf('s'));
    bytes.fill(0xee, bytes.length - 5000, bytes.length - 4);
    writeFileSync(fileOf('s'), bytes);
    assert.deepEqual((await store.list()).get('s'), { ...checkpointOf('s', 5).meta, pendingLabels: [49] });
    assert.deepEqual(problems, []);
    assert.ok(existsSync(fileOf('s')));
    await assert.rejects(store.load('s'), (e: CheckpointDefectError) => e.defect === 'crc-mismatch');
  });

  test('10^4 files of 250 KiB: list returns every meta without reading the snapshots', async () => {
    const dir = freshDir();
    const { store, problems } = storeIn(dir);
    const n = 10_000;
    const size = 250 * 1024;
    // Header and meta of a real 250 KiB checkpoint, then a hole: a sparse file whose CRC can only fail, so list
    // finding them all intact shows it never read the tail.
    for (let i = 0; i < n; i++) {
      const stream = `stream-${i}`;
      const full = encodeCheckpointFile({ meta: { ...checkpointOf(stream, i).meta, pendingLabels: [i] }, snapshot: new Uint8Array(size - 200) });
      const headLength = 12 + Buffer.from(full.buffer, full.byteOffset).readUInt32LE(8);
      const fd = openSync(join(dir, checkpointFileName(stream)), 'w');
      writeSync(fd, full, 0, headLength, 0);
      writeSync(fd, Buffer.from([0xff]), 0, 1, full.length - 1);
      closeSync(fd);
    }
    const started = performance.now();
    const metas = await store.list();
    const seconds = (performance.now() - started) / 1000;
    assert.equal(metas.size, n);
    assert.deepEqual(metas.get('stream-1234'), { ...checkpointOf('stream-1234', 1234).meta, pendingLabels: [1234] });
    assert.deepEqual(problems, []);
    // Generous: reading the 2.4 GiB would take far longer; on our machines this takes well under a second.
    assert.ok(seconds < 10, `list took ${seconds.toFixed(2)} s`);
    await assert.rejects(store.load('stream-7'), (e: CheckpointDefectError) => e.defect === 'crc-mismatch');
  });
});

describe('start-up checks and writes in flight', () => {
  test('a directory under /proc throws at once, with the path and the reason', () => {
    const started = performance.now();
    assert.throws(() => new FileCheckpointStore('/proc/driftline-test'), (e: Error) => {
      assert.match(e.message, /^checkpoint\.dir \/proc\/driftline-test is not a writable directory: /);
      return true;
    });
    assert.throws(() => new FileCheckpointStore('/proc/driftline-test/deeper/still'), /checkpoint\.dir \/proc\/driftline-test\/deeper\/still is not a writable directory/);
    assert.ok(performance.now() - started < 2000);
  });

  test('a path whose parent is a regular file throws with the path and the reason', () => {
    const file = join(scratch, `plain-${++dirCount}`);
    writeFileSync(file, 'not a directory');
    assert.throws(() => new FileCheckpointStore(join(file, 'checkpoints')), (e: NodeJS.ErrnoException) => {
      assert.ok(e.message.startsWith(`checkpoint.dir ${join(file, 'checkpoints')} is not a writable directory: `), e.message);
      assert.equal(e.code, 'ENOTDIR');
      return true;
    });
    assert.throws(() => new FileCheckpointStore(file), /checkpoint\.dir .* is not a writable directory: .*is not a directory/);
  });

  test('an existing directory that takes no files throws (the probe write, not the permission bits, decides)', () => {
    assert.throws(() => new FileCheckpointStore('/proc/self'), /^Error: checkpoint\.dir \/proc\/self is not a writable directory: .*\.tmp-probe-/);
  });

  test('the probe leaves nothing behind; nested directories are made', () => {
    const dir = join(freshDir(), 'a', 'b');
    new FileCheckpointStore(dir);
    assert.ok(statSync(dir).isDirectory());
    assert.deepEqual(readdirSync(dir), []);
  });

  test('pendingWrites counts saves in flight; idle() resolves when they are done', async () => {
    const dir = freshDir();
    const { store } = storeIn(dir);
    assert.equal(store.pendingWrites, 0);
    await store.idle();
    const saves = [store.save(checkpointOf('a', 1)), store.save(checkpointOf('a', 2)), store.save(checkpointOf('b', 1))];
    // An invalid checkpoint is refused before any I/O: never in flight.
    const failing = assert.rejects(store.save({ meta: { ...checkpointOf('c', 1).meta, lastSeq: NaN }, snapshot: new Uint8Array(1) }), TypeError);
    assert.equal(store.pendingWrites, 3);
    await store.idle();
    assert.equal(store.pendingWrites, 0);
    await Promise.all(saves);
    await failing;
    // Saves of one stream are applied in call order.
    assert.equal((await store.load('a'))!.meta.version, 2);
    assert.ok(readdirSync(dir).every((n) => !n.startsWith(CHECKPOINT_TEMP_PREFIX)));
  });
});

describe('readSnapshotHeader', () => {
  test('reads the spec of a real learner snapshot; refuses what is not one', () => {
    const learner = createLearner(spec);
    learner.predict(Float32Array.from([0.1, 0.2, 0.3]));
    const header = readSnapshotHeader(learner.snapshot());
    assert.equal(header.specJson, canonicalJson(learner.spec));
    assert.deepEqual(header.spec, JSON.parse(canonicalJson(learner.spec)));
    assert.equal(header.format, 1);
    assert.ok(header.persistentFloats > 0);
    assert.throws(() => readSnapshotHeader(Uint8Array.from([1, 2, 3])), SnapshotError);
    assert.throws(() => readSnapshotHeader(new Uint8Array(64)), /bad magic/);
    assert.throws(() => readSnapshotHeader(learner.snapshot().subarray(0, 20)), /does not fit/);
  });
});

describe('driftline checkpoint inspect and --version (subprocess)', () => {
  const cli = (...args: string[]) => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', cwd: process.cwd() });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const dir = freshDir();
  const store = new FileCheckpointStore(dir);
  const learner = createLearner(spec);
  learner.predict(Float32Array.from([0.1, 0.2, 0.3]));
  learner.learn(Float32Array.from([0.5, -0.5]));
  const checkpoint: StoredCheckpoint = {
    meta: { stream: 'rig-7', lastSeq: 41, version: 1, tick: 0, savedAt: Date.UTC(2025, 0, 31, 23, 59, 59, 123), pendingLabels: [40, 41] },
    snapshot: learner.snapshot(),
    parts: new Map([['predict-then-learn', new Uint8Array(96)], ['normalize-inputs', new Uint8Array(48)]]),
  };
  const good = join(dir, checkpointFileName('rig-7'));

  test('a good file: text and --json, exit 0', async () => {
    await store.save(checkpoint);
    const text = cli('checkpoint', 'inspect', good);
    assert.equal(text.code, 0, text.stderr);
    for (const expected of [
      /^format: +2$/m, /^stream: +"rig-7"$/m, /^lastSeq: +41$/m, /^version: +1 updates$/m, /^tick: +0$/m,
      /^savedAt: +2025-01-31T23:59:59\.123Z$/m, /^pendingLabels: +2$/m,
      new RegExp(`^snapshot: +${checkpoint.snapshot.length} bytes$`, 'm'), /^spec: +\{"cell":\{"hiddenSize":8,"kind":"tanh-rnn"\}/m,
      /^parts: +2$/m, /^ +predict-then-learn +96 bytes$/m, /^ +normalize-inputs +48 bytes$/m,
    ]) assert.match(text.stdout, expected);

    const json = cli('checkpoint', 'inspect', good, '--json');
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout);
    assert.deepEqual({ ...report, spec: undefined }, {
      ok: true, file: good, format: 2, stream: 'rig-7', lastSeq: 41, version: 1, tick: 0, savedAt: '2025-01-31T23:59:59.123Z',
      pendingLabels: 2, snapshotBytes: checkpoint.snapshot.length, spec: undefined,
      parts: [{ name: 'predict-then-learn', bytes: 96 }, { name: 'normalize-inputs', bytes: 48 }],
    });
    assert.equal(canonicalJson(report.spec), canonicalJson(learner.spec));
  });

  test('a damaged file: the defect, the message and the unverified meta, exit 1; the file is not moved', async () => {
    await store.save(checkpoint);
    const damaged = join(dir, 'damaged.ckpt');
    writeFileSync(damaged, damage['crc-mismatch'](readFileSync(good)));
    const text = cli('checkpoint', 'inspect', damaged);
    assert.equal(text.code, 1);
    assert.match(text.stdout, /^defect: +crc-mismatch$/m);
    assert.match(text.stdout, /^message: +.*damaged\.ckpt: CRC-32 is 0x[0-9a-f]{8}, the file says/m);
    assert.match(text.stdout, /meta \(unverified\):\n(.*\n)*? +stream: +"rig-7"/);
    const json = JSON.parse(cli('checkpoint', 'inspect', '--json', damaged).stdout);
    assert.equal(json.ok, false);
    assert.equal(json.defect, 'crc-mismatch');
    assert.equal(json.unverifiedMeta.lastSeq, 41);
    assert.ok(existsSync(damaged));

    const notOne = join(dir, 'notes.ckpt');
    writeFileSync(notOne, 'hello, this is not a checkpoint');
    const bad = cli('checkpoint', 'inspect', notOne);
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /^defect: +bad-magic$/m);
    const missing = cli('checkpoint', 'inspect', join(dir, 'missing.ckpt'));
    assert.equal(missing.code, 1);
    assert.match(missing.stdout, /^defect: +unreadable$/m);
    assert.match(missing.stdout, /missing\.ckpt: cannot read: ENOENT/);
  });

  test('usage errors exit 2', () => {
    for (const args of [['checkpoint'], ['checkpoint', 'inspect'], ['checkpoint', 'inspect', '--nope', good], ['checkpoint', 'inspect', good, good], ['checkpoint', 'frobnicate']]) {
      const r = cli(...args);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, /usage: driftline checkpoint inspect FILE \[--json\]/);
    }
    const help = cli('help');
    assert.match(help.stdout, /driftline checkpoint inspect FILE \[--json\]/);
    assert.match(help.stdout, /driftline --version/);
  });

  test('--version and -V print the version of package.json', () => {
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = cli(flag);
      assert.equal(r.code, 0);
      assert.equal(r.stdout, `driftline ${version}\n`);
    }
  });
});
