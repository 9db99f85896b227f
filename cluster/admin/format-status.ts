/** The human form of what cluster-status.ts reads: compact aligned tables. */
import type { ClusterStatus, JobStatus, JobSummary } from './cluster-status.js';

/** `millrace cluster status`: nodes, leader, then every job with its tasks. */
export function formatClusterStatus(status: ClusterStatus): string {
  const lines = [`nodes (${status.nodes.length})`];
  if (status.nodes.length === 0) lines.push('  no nodes');
  else {
    lines.push(
      ...table(
        ['NODE', 'ADDRESS', 'VERSION', 'CAPACITY', 'JOBS', 'TASKS', 'LEAVING', 'HEARTBEAT'],
        status.nodes.map((n) => [n.id, n.address, n.version, n.capacity ?? '-', n.jobs.join(',') || '-', n.tasks, n.leaving ? 'yes' : 'no', `${age(n.heartbeatAgeMs)} ago`]),
      ).map(indent),
    );
  }
  const leader = status.leader;
  lines.push(leader ? `leader: ${leader.node} (epoch ${leader.epoch}, renewed ${age(leader.renewedAgeMs)} ago)` : 'leader: none');
  if (status.jobs.length === 0) lines.push('', 'no jobs');
  for (const job of status.jobs) lines.push('', ...jobLines(job, false));
  return lines.join('\n');
}

/** `millrace job describe <job>`: the job's stages, assignment, last checkpoint and tasks. */
export function formatJob(job: JobStatus): string {
  return jobLines(job, true).join('\n');
}

/** `millrace job list`. */
export function formatJobList(jobs: readonly JobSummary[]): string {
  if (jobs.length === 0) return 'no jobs';
  const now = Date.now();
  return table(
    ['JOB', 'STATUS', 'TASKS', 'STAGES', 'UPDATED BY', 'UPDATED'],
    jobs.map((j) => [j.job, j.status, j.tasks, j.stages, j.updatedBy, `${age(now - j.updatedAt)} ago`]),
  ).join('\n');
}

function jobLines(job: JobStatus, withStages: boolean): string[] {
  const lines = [`job ${job.job}: ${job.status} (by ${job.updatedBy})`];
  if (withStages) lines.push(...table(['STAGE', 'INPUT', 'OUTPUT', 'TASKS'], job.stages.map((s) => [s.id, s.input, s.output, s.tasks])).map(indent));
  const a = job.assignment;
  if (!a) lines.push('  assignment: none yet');
  else {
    const handoff = a.handoff ? `handoff at checkpoint ${a.handoff.checkpoint}: ${Object.keys(a.handoff.tasks).length} tasks moving` : 'no handoff';
    lines.push(`  assignment: generation ${a.generation}, version ${a.version}, leader epoch ${a.leaderEpoch}; ${handoff}`);
  }
  const c = job.lastCheckpoint;
  lines.push(c ? `  last checkpoint: ${c.id} (${age(c.ageMs)} ago, generation ${c.generation})` : '  last checkpoint: none');
  lines.push(
    ...table(
      ['TASK', 'NODE', 'LAG'],
      job.tasks.map((t) => [t.task, t.movingTo ? `${t.node ?? '-'} -> ${t.movingTo}` : (t.node ?? '-'), t.lag ?? '-']),
    ).map(indent),
  );
  return lines;
}

/** Rows under a header, each column as wide as its widest cell, two spaces apart. */
function table(header: readonly string[], rows: readonly (readonly (string | number)[])[]): string[] {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '));
}

function indent(line: string): string {
  return `  ${line}`;
}

/** 850 ms → "0.9s", 75 s → "1m15s", 2 h → "2h0m". */
function age(ms: number): string {
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${Math.floor(s % 60)}s`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}
