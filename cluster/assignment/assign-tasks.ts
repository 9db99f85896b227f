/**
 * Which node runs which task of a job: balanced (node loads differ by at
 * most one task, except where a node's capacity caps it lower) and sticky (a
 * task stays where it ran unless balance needs it elsewhere, so a join or a
 * leave moves as few tasks, and as little state, as it can). Pure and
 * deterministic: the same inputs give the same map.
 */
import { ErrorCodes, millraceError } from '../../errors.js';

/** Task id → node id. */
export type Assignment = ReadonlyMap<string, string>;

/**
 * Assigns every task to one of `nodes`, keeping `previous` owners where balance allows.
 * @param capacity the most tasks of this job a node may take; a node missing from it has no limit
 * @param preferred for a task that must find a new node: the nodes to try first, in order (its standby replicas)
 * @throws TypeError when there are tasks but no nodes
 * @throws MR_CLUSTER_CAPACITY when the nodes' capacities add up to fewer than the tasks
 */
export function assignTasks(
  tasks: readonly string[],
  nodes: readonly string[],
  previous: Assignment = new Map(),
  capacity: ReadonlyMap<string, number> = new Map(),
  preferred: ReadonlyMap<string, readonly string[]> = new Map(),
): Map<string, string> {
  const assignment = new Map<string, string>();
  if (tasks.length === 0) return assignment;
  if (nodes.length === 0) throw new TypeError('cannot assign tasks to no nodes');
  const members = [...new Set(nodes)].sort();
  const kept = new Map<string, string[]>(members.map((n) => [n, []]));
  for (const task of [...tasks].sort()) {
    const owner = previous.get(task);
    if (owner !== undefined) kept.get(owner)?.push(task);
  }
  // The nodes that already hold the most get the places above the common level, so fewer tasks move.
  const byHeld = [...members].sort((a, b) => kept.get(b)!.length - kept.get(a)!.length || a.localeCompare(b));
  const limit = loadLimits(tasks.length, byHeld, (n) => capacity.get(n) ?? Infinity);

  const load = new Map<string, number>(members.map((n) => [n, 0]));
  for (const node of members) {
    for (const task of kept.get(node)!.slice(0, limit.get(node))) {
      assignment.set(task, node);
      load.set(node, load.get(node)! + 1);
    }
  }
  for (const task of [...tasks].sort()) {
    if (assignment.has(task)) continue;
    const room = members.filter((n) => load.get(n)! < limit.get(n)!);
    const node =
      preferred.get(task)?.find((n) => room.includes(n)) ?? room.sort((a, b) => load.get(a)! - load.get(b)! || a.localeCompare(b))[0]!;
    assignment.set(task, node);
    load.set(node, load.get(node)! + 1);
  }
  return assignment;
}

/**
 * How many tasks each node gets: the highest common level L that `total`
 * fills (each node min(capacity, L)), then one more for the first nodes of
 * `ordered` with room above L until every task has a place.
 */
function loadLimits(total: number, ordered: readonly string[], capacityOf: (node: string) => number): Map<string, number> {
  const filled = (level: number) => ordered.reduce((sum, n) => sum + Math.min(capacityOf(n), level), 0);
  if (filled(total) < total) {
    throw millraceError(ErrorCodes.CLUSTER_CAPACITY, `${total} tasks do not fit on ${ordered.length} nodes of capacity ${filled(total)} in all`, {
      details: { tasks: total, nodes: ordered.length, capacity: filled(total) },
    });
  }
  let [low, high] = [0, total]; // the largest level with filled(level) <= total
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (filled(mid) <= total) low = mid;
    else high = mid - 1;
  }
  let extra = total - filled(low);
  const limits = new Map<string, number>();
  for (const node of ordered) {
    const room = capacityOf(node) > low;
    limits.set(node, Math.min(capacityOf(node), low) + (room && extra > 0 ? 1 : 0));
    if (room && extra > 0) extra--;
  }
  return limits;
}

/**
 * Up to `replicas` standby nodes per task, none its owner: sticky (a standby
 * stays while it is live and not the owner) and balanced by standby count.
 */
export function assignStandbys(
  assignment: Assignment,
  nodes: readonly string[],
  replicas: number,
  previous: ReadonlyMap<string, readonly string[]> = new Map(),
): Map<string, string[]> {
  const standbys = new Map<string, string[]>();
  if (replicas <= 0) return standbys;
  const members = [...new Set(nodes)].sort();
  const load = new Map<string, number>(members.map((n) => [n, 0]));
  const tasks = [...assignment.keys()].sort();
  for (const task of tasks) {
    const kept = (previous.get(task) ?? []).filter((n) => n !== assignment.get(task) && load.has(n)).slice(0, replicas);
    standbys.set(task, kept);
    for (const n of kept) load.set(n, load.get(n)! + 1);
  }
  for (const task of tasks) {
    const chosen = standbys.get(task)!;
    while (chosen.length < replicas) {
      const next = members
        .filter((n) => n !== assignment.get(task) && !chosen.includes(n))
        .sort((a, b) => load.get(a)! - load.get(b)! || a.localeCompare(b))[0];
      if (next === undefined) break; // fewer other nodes than replicas
      chosen.push(next);
      load.set(next, load.get(next)! + 1);
    }
  }
  return standbys;
}

/** The tasks of `assignment` whose owner differs from `previous` (new tasks included). */
export function movedTasks(assignment: Assignment, previous: Assignment): string[] {
  return [...assignment].filter(([task, node]) => previous.get(task) !== node).map(([task]) => task);
}
