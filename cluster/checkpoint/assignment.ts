/**
 * Which node runs which task of a job: balanced (node loads differ by at
 * most one task) and sticky (a task stays where it ran unless balance needs
 * it elsewhere, so a join or a leave moves as few tasks, and as little state,
 * as it can). Pure and deterministic: the same inputs give the same map.
 */

/** Task id → node id. */
export type Assignment = ReadonlyMap<string, string>;

/**
 * Assigns every task to one of `nodes`, keeping `previous` owners where balance allows.
 * @throws TypeError when there are tasks but no nodes
 */
export function assignTasks(tasks: readonly string[], nodes: readonly string[], previous: Assignment = new Map()): Map<string, string> {
  const assignment = new Map<string, string>();
  if (tasks.length === 0) return assignment;
  if (nodes.length === 0) throw new TypeError('cannot assign tasks to no nodes');
  const members = [...new Set(nodes)].sort();
  const kept = new Map<string, string[]>(members.map((n) => [n, []]));
  for (const task of [...tasks].sort()) {
    const owner = previous.get(task);
    if (owner !== undefined) kept.get(owner)?.push(task);
  }
  // `tasks.length % members.length` nodes carry one task more than the others; the nodes
  // that already hold the most get those places, so fewer tasks move.
  const base = Math.floor(tasks.length / members.length);
  let larger = tasks.length % members.length;
  const byHeld = [...members].sort((a, b) => kept.get(b)!.length - kept.get(a)!.length || a.localeCompare(b));
  const limit = new Map<string, number>();
  for (const node of byHeld) limit.set(node, base + (larger-- > 0 ? 1 : 0));

  const load = new Map<string, number>(members.map((n) => [n, 0]));
  for (const node of members) {
    for (const task of kept.get(node)!.slice(0, limit.get(node))) {
      assignment.set(task, node);
      load.set(node, load.get(node)! + 1);
    }
  }
  for (const task of [...tasks].sort()) {
    if (assignment.has(task)) continue;
    const node = members
      .filter((n) => load.get(n)! < limit.get(n)!)
      .sort((a, b) => load.get(a)! - load.get(b)! || a.localeCompare(b))[0]!;
    assignment.set(task, node);
    load.set(node, load.get(node)! + 1);
  }
  return assignment;
}

/** The tasks of `assignment` whose owner differs from `previous` (new tasks included). */
export function movedTasks(assignment: Assignment, previous: Assignment): string[] {
  return [...assignment].filter(([task, node]) => previous.get(task) !== node).map(([task]) => task);
}
