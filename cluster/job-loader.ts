/** Loads job modules named in the config: each exports a job definition as `default` or `job`. */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ErrorCodes, millraceError } from '../errors.js';
import { isJobDefinition, type JobDefinition } from '../runtime/api/index.js';

export async function loadJobModule(path: string, cwd = process.cwd()): Promise<JobDefinition> {
  const url = pathToFileURL(resolve(cwd, path)).href;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (cause) {
    throw millraceError(ErrorCodes.JOB_MODULE, `cannot load job module "${path}": ${(cause as Error).message}`, {
      cause,
      details: { path },
    });
  }
  const candidate = mod.default ?? mod.job;
  if (!isJobDefinition(candidate)) {
    throw millraceError(
      ErrorCodes.JOB_MODULE,
      `job module "${path}" must export a job definition (job(...).from(...)...to(...)) as default or as "job"`,
      { details: { path, exports: Object.keys(mod) } },
    );
  }
  return candidate;
}
