/** Rewrites the generated results section of docs/benchmarks.md, leaving the prose around it alone. */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const BENCHMARKS_DOC = fileURLToPath(new URL('../../docs/benchmarks.md', import.meta.url));
const START = '<!-- bench:results:start (written by `npm run bench -- --write-doc`) -->';
const END = '<!-- bench:results:end -->';

/** Replaces the text between the markers (or appends a marked section when they are missing). */
export function writeResultsSection(markdown: string, file = BENCHMARKS_DOC): void {
  let doc = '';
  try {
    doc = readFileSync(file, 'utf8');
  } catch {
    doc = '# Benchmarks\n';
  }
  const section = `${START}\n${markdown.trim()}\n${END}`;
  const from = doc.indexOf(START);
  const to = doc.indexOf(END);
  doc = from >= 0 && to > from ? doc.slice(0, from) + section + doc.slice(to + END.length) : `${doc.trimEnd()}\n\n## Results\n\n${section}\n`;
  writeFileSync(file, doc);
}
