/**
 * BarrierAligner alone (decision 003, "Alignment on one subject"): which
 * records it holds, when a checkpoint completes, what it hands back and in
 * which order, and which barriers it ignores. Records are bare stand-ins:
 * the aligner only keeps and returns them.
 */
import test from 'ava';
import type { InputMessage } from '../../runtime/task/ports.js';
import { BarrierAligner } from '../../runtime/task/barrier-aligner.js';

const A = 'j/s0/0';
const B = 'j/s0/1';
const C = 'j/s0/2';

/** A record stand-in with stream sequence `seq`. */
function rec(seq: number): InputMessage {
  return { seq, subject: 'mr.j__s1.0', data: new Uint8Array(0), info: { timestampNanos: 0 }, ack: () => undefined };
}

const seqs = (messages: readonly InputMessage[]) => messages.map((m) => m.seq);

/** An outcome as plain data, with records as their sequences. */
function outcome(o: { before: readonly InputMessage[]; complete: number | undefined; after: readonly InputMessage[] }) {
  return { before: seqs(o.before), complete: o.complete, after: seqs(o.after) };
}

const NOTHING = { before: [], complete: undefined, after: [] };

function aligner(upstream: string[], maxHeld = 100): BarrierAligner {
  return new BarrierAligner(new Set(upstream), maxHeld);
}

test('no record is held while no alignment is in progress', (t) => {
  const a = aligner([A, B]);
  t.false(a.holds(A, rec(1)));
  t.false(a.holds(B, rec(2)));
  t.is(a.current, 0);
});

test("after producer A's barrier n, A's records are held and B's pass until B's barrier n completes n", (t) => {
  const a = aligner([A, B]);
  t.deepEqual(outcome(a.barrier(1, A, 2)), NOTHING, 'one of two barriers: nothing to do yet');
  t.is(a.current, 1);
  t.true(a.holds(A, rec(3)), "A's record after its barrier is held");
  t.false(a.holds(B, rec(4)), "B's record before its barrier is processed");
  t.true(a.holds(A, rec(5)));
  const done = a.barrier(1, B, 6);
  t.deepEqual(outcome(done), { before: [], complete: 1, after: [3, 5] }, 'seal 1, then the held records in arrival order');
  t.deepEqual(done.held, [[A, 2]], "A's records after sequence 2 are not in the sealed state, though they precede the position (6)");
  t.is(a.current, 0);
  t.false(a.holds(A, rec(7)), 'after completion nothing is held');
});

test('with three producers, a checkpoint completes only at the third distinct barrier', (t) => {
  const a = aligner([A, B, C]);
  t.deepEqual(outcome(a.barrier(1, B, 1)), NOTHING);
  t.deepEqual(outcome(a.barrier(1, B, 2)), NOTHING, 'a repeated barrier from the same producer counts once');
  t.true(a.holds(B, rec(3)));
  t.deepEqual(outcome(a.barrier(1, A, 4)), NOTHING);
  t.true(a.holds(A, rec(5)));
  t.false(a.holds(C, rec(6)));
  const done = a.barrier(1, C, 7);
  t.deepEqual(outcome(done), { before: [], complete: 1, after: [3, 5] });
  t.deepEqual(new Map(done.held), new Map([[B, 1], [A, 4]]), "a producer's first barrier is where its held records begin");
});

test('with a single upstream producer its barrier completes the checkpoint at once', (t) => {
  const a = aligner([A]);
  t.deepEqual(outcome(a.barrier(4, A, 0)), { before: [], complete: 4, after: [] });
  t.is(a.current, 0);
});

test('a newer barrier abandons an incomplete alignment: its held records come back first, then alignment of the newer one starts', (t) => {
  const a = aligner([A, B]);
  a.barrier(1, A, 0);
  t.true(a.holds(A, rec(2)));
  t.true(a.holds(A, rec(3)));
  t.deepEqual(outcome(a.barrier(2, A, 0)), { before: [2, 3], complete: undefined, after: [] }, 'process the held records before going on');
  t.is(a.current, 2);
  t.true(a.holds(A, rec(5)), 'A already sent barrier 2');
  t.false(a.holds(B, rec(6)));
  t.deepEqual(outcome(a.barrier(2, B, 0)), { before: [], complete: 2, after: [5] });
});

test('a newer barrier from the producer that was missing also abandons the alignment, and counts only that producer', (t) => {
  const a = aligner([A, B]);
  a.barrier(1, A, 0);
  a.holds(A, rec(2));
  t.deepEqual(outcome(a.barrier(2, B, 0)), { before: [2], complete: undefined, after: [] });
  t.false(a.holds(A, rec(4)), "A's barrier 1 does not count for checkpoint 2");
  t.true(a.holds(B, rec(5)));
  t.deepEqual(outcome(a.barrier(2, A, 0)), { before: [], complete: 2, after: [5] });
});

test('barriers of a completed checkpoint, of one older than the alignment, or of a producer not upstream are ignored', (t) => {
  const a = aligner([A, B]);
  a.barrier(1, A, 0);
  a.barrier(1, B, 0);
  t.deepEqual(outcome(a.barrier(1, A, 0)), NOTHING, 'checkpoint 1 is done');
  t.is(a.current, 0);

  a.barrier(3, A, 0);
  t.deepEqual(outcome(a.barrier(2, B, 0)), NOTHING, 'older than the alignment in progress');
  t.false(a.holds(B, rec(10)), "B's barrier 2 did not count as B's barrier 3");
  t.deepEqual(outcome(a.barrier(3, C, 0)), NOTHING, 'C is not upstream');
  t.is(a.current, 3);
  t.deepEqual(outcome(a.barrier(3, B, 0)).complete, 3);
});

test('the holding bound: full at maxHeld records; giveUp returns them in order and settles that checkpoint', (t) => {
  const a = aligner([A, B], 2);
  a.barrier(1, A, 0);
  a.holds(A, rec(2));
  t.false(a.full);
  a.holds(A, rec(3));
  t.true(a.full);
  t.deepEqual(seqs(a.giveUp()), [2, 3]);
  t.is(a.current, 0);
  t.false(a.full);
  t.false(a.holds(A, rec(4)), 'nothing is held once the checkpoint is given up');
  t.deepEqual(outcome(a.barrier(1, B, 0)), NOTHING, 'the late barrier of the given-up checkpoint is ignored');
  t.is(a.current, 0, 'it starts no alignment');
  t.false(a.holds(B, rec(5)));
  a.barrier(2, A, 0);
  t.deepEqual(outcome(a.barrier(2, B, 0)).complete, 2, 'the next checkpoint aligns as usual');
});

test('restoredFrom(n): barriers up to n are old, n + 1 aligns; an alignment in progress is dropped', (t) => {
  const a = aligner([A, B]);
  a.barrier(6, A, 0);
  a.holds(A, rec(2));
  a.restoredFrom(5);
  t.is(a.current, 0);
  t.false(a.holds(A, rec(3)));
  t.deepEqual(outcome(a.barrier(5, A, 0)), NOTHING);
  t.deepEqual(outcome(a.barrier(5, B, 0)), NOTHING);
  t.deepEqual(outcome(a.barrier(6, A, 0)), NOTHING);
  t.deepEqual(outcome(a.barrier(6, B, 0)), { before: [], complete: 6, after: [] });
});
