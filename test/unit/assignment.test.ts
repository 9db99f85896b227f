import test from 'ava';
import { assignTasks, movedTasks } from '../../cluster/checkpoint/assignment.js';

const tasks = (n: number) => Array.from({ length: n }, (_, i) => `job/s${i % 3}/${i}`);

function loads(assignment: Map<string, string>, nodes: readonly string[]): number[] {
  return nodes.map((n) => [...assignment.values()].filter((v) => v === n).length);
}

/** Brute force: the fewest tasks that must move for a balanced assignment from `previous`. */
function minimalMoves(all: readonly string[], nodes: readonly string[], previous: Map<string, string>): number {
  const base = Math.floor(all.length / nodes.length);
  const extra = all.length % nodes.length;
  const held = nodes.map((n) => all.filter((t) => previous.get(t) === n).length).sort((a, b) => b - a);
  // The `extra` nodes holding most may keep base+1, the others base.
  const kept = held.reduce((sum, h, i) => sum + Math.min(h, base + (i < extra ? 1 : 0)), 0);
  return all.length - kept;
}

test('every task gets exactly one node, and loads differ by at most one', (t) => {
  for (const [n, m] of [[12, 3], [13, 3], [2, 5], [1, 1], [100, 7]] as const) {
    const nodes = Array.from({ length: m }, (_, i) => `node-${i}`);
    const a = assignTasks(tasks(n), nodes);
    t.is(a.size, n);
    t.true([...a.values()].every((v) => nodes.includes(v)));
    const l = loads(a, nodes);
    t.true(Math.max(...l) - Math.min(...l) <= 1, `${n} tasks on ${m} nodes: loads ${l}`);
  }
});

test('the same inputs give the same assignment, whatever their order', (t) => {
  const a = assignTasks(tasks(13), ['b', 'a', 'c']);
  const b = assignTasks([...tasks(13)].reverse(), ['c', 'b', 'a']);
  t.deepEqual([...a].sort(), [...b].sort());
});

test('a joining node takes only its share; the others keep theirs', (t) => {
  const all = tasks(12);
  const before = assignTasks(all, ['a', 'b']);
  const after = assignTasks(all, ['a', 'b', 'c'], before);
  t.deepEqual(loads(after, ['a', 'b', 'c']), [4, 4, 4]);
  const moved = movedTasks(after, before);
  t.is(moved.length, 4);
  t.true(moved.every((task) => after.get(task) === 'c'), 'only tasks moving to the new node move');
  t.is(moved.length, minimalMoves(all, ['a', 'b', 'c'], before));
});

test('a leaving node’s tasks are spread over the others; nothing else moves', (t) => {
  const all = tasks(13);
  const before = assignTasks(all, ['a', 'b', 'c']);
  const after = assignTasks(all, ['a', 'c'], before);
  const l = loads(after, ['a', 'c']);
  t.true(Math.abs(l[0]! - l[1]!) <= 1);
  const moved = movedTasks(after, before);
  t.deepEqual(moved.sort(), all.filter((task) => before.get(task) === 'b').sort());
});

test('moves are minimal for random memberships (brute-force reference)', (t) => {
  let seed = 7;
  const rand = (k: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % k;
  };
  let previous = new Map<string, string>();
  const pool = ['n0', 'n1', 'n2', 'n3', 'n4', 'n5'];
  for (let round = 0; round < 200; round++) {
    const nodes = pool.filter(() => rand(3) > 0);
    if (nodes.length === 0) continue;
    const all = tasks(1 + rand(40));
    const next = assignTasks(all, nodes, previous);
    const l = loads(next, nodes);
    t.true(Math.max(...l) - Math.min(...l) <= 1);
    const moved = all.filter((task) => previous.get(task) !== next.get(task) && previous.has(task)).length;
    const newTasks = all.filter((task) => !previous.has(task)).length;
    t.is(moved + newTasks, minimalMoves(all, nodes, previous), `round ${round}`);
    previous = next;
  }
});

test('no nodes for some tasks is an error; no tasks is an empty assignment', (t) => {
  t.throws(() => assignTasks(['x'], []), { instanceOf: TypeError });
  t.is(assignTasks([], []).size, 0);
});
