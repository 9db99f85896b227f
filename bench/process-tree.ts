/** The descendants of a process, from /proc (Linux), so a run killed at its deadline leaves no node processes behind. */
import { readFileSync, readdirSync } from 'node:fs';

/** Pids of every process below `pid`, children before grandchildren. */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  for (let i = 0, queue = [pid]; i < queue.length; i++) {
    for (const child of childrenOf(queue[i]!)) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

function childrenOf(pid: number): number[] {
  const children: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (text) children.push(...text.split(' ').map(Number));
    }
  } catch {
    // gone already, or no /proc
  }
  return children;
}
