import test from 'ava';
import { assignStandbys, assignTasks, movedTasks } from '../../cluster/assignment/assign-tasks.js';

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

test('capacity caps a node below its share; the others take the rest, still balanced among themselves', (t) => {
  const all = tasks(12);
  const capacity = new Map([['a', 2]]);
  const a = assignTasks(all, ['a', 'b', 'c'], new Map(), capacity);
  t.deepEqual(loads(a, ['a', 'b', 'c']), [2, 5, 5]);
  const uneven = assignTasks(tasks(13), ['a', 'b', 'c'], new Map(), new Map([['a', 3], ['b', 3]]));
  t.deepEqual(loads(uneven, ['a', 'b', 'c']), [3, 3, 7], 'a node without a limit takes what the capped ones cannot');
});

test('capacity is respected for random memberships and capacities; assignments stay sticky (brute-force reference)', (t) => {
  let seed = 11;
  const rand = (k: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % k;
  };
  let previous = new Map<string, string>();
  for (let round = 0; round < 200; round++) {
    const nodes = ['n0', 'n1', 'n2', 'n3'].filter(() => rand(4) > 0);
    if (nodes.length === 0) continue;
    const capacity = new Map(nodes.filter(() => rand(2) === 0).map((n) => [n, 1 + rand(6)]));
    const all = tasks(1 + rand(20));
    const room = nodes.reduce((sum, n) => sum + (capacity.get(n) ?? Infinity), 0);
    if (room < all.length) {
      t.throws(() => assignTasks(all, nodes, previous, capacity), { code: 'MR_CLUSTER_CAPACITY' }, `round ${round}`);
      continue;
    }
    const next = assignTasks(all, nodes, previous, capacity);
    const l = loads(next, nodes);
    t.true(nodes.every((n, i) => l[i]! <= (capacity.get(n) ?? Infinity)), `round ${round}: loads ${l} within capacity`);
    // Balanced: a node below another by two or more is at its capacity.
    const max = Math.max(...l);
    t.true(nodes.every((n, i) => l[i]! >= max - 1 || l[i] === capacity.get(n)), `round ${round}: loads ${l}`);
    // Sticky: a task keeps its node when that node still has its place (its load did not shrink below what it kept).
    for (const task of all) {
      const before = previous.get(task);
      if (before && nodes.includes(before) && next.get(task) !== before) {
        const keptThere = all.filter((x) => previous.get(x) === before && next.get(x) === before).length;
        t.is(keptThere, l[nodes.indexOf(before)]!, `round ${round}: ${task} left ${before} only because ${before} is full of tasks it kept`);
      }
    }
    previous = next;
  }
});

test('standbys: each task gets replicas other nodes than its owner, balanced, and keeps them while it can', (t) => {
  const all = tasks(12);
  const owners = assignTasks(all, ['a', 'b', 'c']);
  const standbys = assignStandbys(owners, ['a', 'b', 'c'], 1);
  t.true(all.every((task) => standbys.get(task)!.length === 1 && standbys.get(task)![0] !== owners.get(task)));
  const counts = ['a', 'b', 'c'].map((n) => [...standbys.values()].filter((s) => s.includes(n)).length);
  t.deepEqual(counts, [4, 4, 4]);
  t.deepEqual(assignStandbys(owners, ['a', 'b', 'c'], 1, standbys), standbys, 'the same members keep the same standbys');
  const two = assignStandbys(owners, ['a', 'b'], 2);
  t.true([...two].every(([task, s]) => s.length === (owners.get(task) === 'c' ? 2 : 1)), 'never more standbys than other nodes');
  t.is(assignStandbys(owners, ['a', 'b', 'c'], 0).size, 0);
});

test("a task whose node is gone goes to its standby when that node has room", (t) => {
  const all = tasks(12);
  const before = assignTasks(all, ['a', 'b', 'c']);
  const standbys = assignStandbys(before, ['a', 'b', 'c'], 1);
  const after = assignTasks(all, ['a', 'b'], before, new Map(), standbys);
  for (const task of all.filter((x) => before.get(x) === 'c')) t.is(after.get(task), standbys.get(task)![0], `${task} went to its standby`);
  const l = loads(after, ['a', 'b']);
  t.true(Math.abs(l[0]! - l[1]!) <= 1, 'still balanced');
});
