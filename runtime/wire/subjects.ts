/** Subject of partition `p` of millrace stream `stream` (docs/wire-format.md). */
export function partitionSubject(stream: string, p: number): string {
  return `mr.${stream}.${p}`;
}

export function partitionSubjects(stream: string, partitions: number): string[] {
  return Array.from({ length: partitions }, (_, p) => partitionSubject(stream, p));
}
